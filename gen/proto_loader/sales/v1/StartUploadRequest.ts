// Original file: proto/sales.proto

import type { Long } from '@grpc/proto-loader';

export interface StartUploadRequest {
  'filename'?: (string);
  /**
   * Total size in bytes when known, 0 when not.
   */
  'size'?: (number | string | Long);
}

export interface StartUploadRequest__Output {
  'filename': (string);
  /**
   * Total size in bytes when known, 0 when not.
   */
  'size': (string);
}
