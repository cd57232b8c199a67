// Original file: proto/sales.proto


export interface StartUploadResponse {
  'uploadId'?: (string);
  /**
   * The chunk size the server prefers for AppendUpload.
   */
  'chunkSize'?: (number);
}

export interface StartUploadResponse__Output {
  'uploadId': (string);
  /**
   * The chunk size the server prefers for AppendUpload.
   */
  'chunkSize': (number);
}
