// Original file: proto/sales.proto


export interface DownloadRequest {
  'resultId'?: (string);
}

export interface DownloadRequest__Output {
  'resultId': (string);
}
