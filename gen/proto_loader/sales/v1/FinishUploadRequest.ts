// Original file: proto/sales.proto


export interface FinishUploadRequest {
  'uploadId'?: (string);
}

export interface FinishUploadRequest__Output {
  'uploadId': (string);
}
