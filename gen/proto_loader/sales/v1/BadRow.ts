// Original file: proto/sales.proto

import type { Long } from '@grpc/proto-loader';

export interface BadRow {
  /**
   * 1-based line where the record starts in its own file; the header, when present, is line 1.
   */
  'line'?: (number | string | Long);
  'reason'?: (string);
  /**
   * The record's first 200 characters.
   */
  'raw'?: (string);
  /**
   * The name of the file the row is in, as the client gave it (empty when it gave none).
   */
  'file'?: (string);
  /**
   * The 0-based position of that file in the upload, for uploads holding two files of one name.
   */
  'fileIndex'?: (number);
}

export interface BadRow__Output {
  /**
   * 1-based line where the record starts in its own file; the header, when present, is line 1.
   */
  'line': (string);
  'reason': (string);
  /**
   * The record's first 200 characters.
   */
  'raw': (string);
  /**
   * The name of the file the row is in, as the client gave it (empty when it gave none).
   */
  'file': (string);
  /**
   * The 0-based position of that file in the upload, for uploads holding two files of one name.
   */
  'fileIndex': (number);
}
