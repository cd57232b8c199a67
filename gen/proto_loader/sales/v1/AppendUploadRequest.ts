// Original file: proto/sales.proto

import type { Long } from '@grpc/proto-loader';

export interface AppendUploadRequest {
  'uploadId'?: (string);
  /**
   * Byte offset of data within the file; must equal the committed offset (or repeat committed bytes).
   */
  'offset'?: (number | string | Long);
  'data'?: (Buffer | Uint8Array | string);
}

export interface AppendUploadRequest__Output {
  'uploadId': (string);
  /**
   * Byte offset of data within the file; must equal the committed offset (or repeat committed bytes).
   */
  'offset': (string);
  'data': (Buffer);
}
