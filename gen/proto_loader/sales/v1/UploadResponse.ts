// Original file: proto/sales.proto

import type { BadRow as _sales_v1_BadRow, BadRow__Output as _sales_v1_BadRow__Output } from '../../sales/v1/BadRow.ts';
import type { Long } from '@grpc/proto-loader';

export interface UploadResponse {
  'resultId'?: (string);
  'downloadUrl'?: (string);
  'rows'?: (number | string | Long);
  'badRows'?: (number | string | Long);
  'departments'?: (number | string | Long);
  'elapsedSec'?: (number | string);
  /**
   * The first bad rows in file order (at most 20).
   */
  'badRowSamples'?: (_sales_v1_BadRow)[];
}

export interface UploadResponse__Output {
  'resultId': (string);
  'downloadUrl': (string);
  'rows': (string);
  'badRows': (string);
  'departments': (string);
  'elapsedSec': (number);
  /**
   * The first bad rows in file order (at most 20).
   */
  'badRowSamples': (_sales_v1_BadRow__Output)[];
}
