// Original file: proto/sales.proto


export interface CancelUploadRequest {
  'uploadId'?: (string);
}

export interface CancelUploadRequest__Output {
  'uploadId': (string);
}
