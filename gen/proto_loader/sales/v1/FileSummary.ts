// Original file: proto/sales.proto

import type { Long } from '@grpc/proto-loader';

/**
 * One file of an upload and its own counts.
 */
export interface FileSummary {
  /**
   * The file's name as the client gave it; empty when it gave none.
   */
  'name'?: (string);
  /**
   * Rows (good + bad) and bad rows in this file.
   */
  'rows'?: (number | string | Long);
  'badRows'?: (number | string | Long);
  /**
   * Distinct departments with at least one good row in this file.
   */
  'departments'?: (number | string | Long);
}

/**
 * One file of an upload and its own counts.
 */
export interface FileSummary__Output {
  /**
   * The file's name as the client gave it; empty when it gave none.
   */
  'name': (string);
  /**
   * Rows (good + bad) and bad rows in this file.
   */
  'rows': (string);
  'badRows': (string);
  /**
   * Distinct departments with at least one good row in this file.
   */
  'departments': (string);
}
