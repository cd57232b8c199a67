// Original file: proto/sales.proto


export interface DownloadResponse {
  'data'?: (Buffer | Uint8Array | string);
}

export interface DownloadResponse__Output {
  'data': (Buffer);
}
