// Original file: proto/sales.proto

import type { Long } from '@grpc/proto-loader';

export interface AppendUploadResponse {
  'committedOffset'?: (number | string | Long);
  /**
   * Rows (good + bad) and bad rows aggregated so far.
   */
  'rows'?: (number | string | Long);
  'badRows'?: (number | string | Long);
}

export interface AppendUploadResponse__Output {
  'committedOffset': (string);
  /**
   * Rows (good + bad) and bad rows aggregated so far.
   */
  'rows': (string);
  'badRows': (string);
}
