// Original file: proto/sales.proto

import type { Long } from '@grpc/proto-loader';

export interface BadRow {
  /**
   * 1-based line where the record starts; the header, when present, is line 1.
   */
  'line'?: (number | string | Long);
  'reason'?: (string);
  /**
   * The record's first 200 characters.
   */
  'raw'?: (string);
}

export interface BadRow__Output {
  /**
   * 1-based line where the record starts; the header, when present, is line 1.
   */
  'line': (string);
  'reason': (string);
  /**
   * The record's first 200 characters.
   */
  'raw': (string);
}
