// Original file: proto/sales.proto


export interface UploadRequest {
  'data'?: (Buffer | Uint8Array | string);
  'filename'?: (string);
}

export interface UploadRequest__Output {
  'data': (Buffer);
  'filename': (string);
}
