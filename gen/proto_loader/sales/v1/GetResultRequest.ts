// Original file: proto/sales.proto


export interface GetResultRequest {
  'resultId'?: (string);
}

export interface GetResultRequest__Output {
  'resultId': (string);
}
