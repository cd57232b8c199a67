// Original file: proto/sales.proto

import type { BadRow as _sales_v1_BadRow, BadRow__Output as _sales_v1_BadRow__Output } from '../../sales/v1/BadRow.ts';
import type { FileSummary as _sales_v1_FileSummary, FileSummary__Output as _sales_v1_FileSummary__Output } from '../../sales/v1/FileSummary.ts';
import type { Long } from '@grpc/proto-loader';

export interface UploadResponse {
  'resultId'?: (string);
  'downloadUrl'?: (string);
  'rows'?: (number | string | Long);
  'badRows'?: (number | string | Long);
  'departments'?: (number | string | Long);
  'elapsedSec'?: (number | string);
  /**
   * Bad rows in upload order, at most 20: for one file its first 20; for several, every file with
   * bad rows keeps its first ones as room allows (after the first 20, a file's first bad row takes
   * the place of the last sample of the file holding the most; see docs/csv-rules.md).
   */
  'badRowSamples'?: (_sales_v1_BadRow)[];
  /**
   * One entry per uploaded file, in upload order, with that file's own counts (rows, bad_rows
   * and departments above are over all files). A single-file upload has one entry.
   */
  'files'?: (_sales_v1_FileSummary)[];
  /**
   * The result's page on the web port: `/r/<result_id>`, with `exp` and `sig` query parameters
   * (the same secret and lifetime as download_url, signed for the page only) when the server signs
   * URLs. A path: the web origin is the client's to know.
   */
  'pagePath'?: (string);
}

export interface UploadResponse__Output {
  'resultId': (string);
  'downloadUrl': (string);
  'rows': (string);
  'badRows': (string);
  'departments': (string);
  'elapsedSec': (number);
  /**
   * Bad rows in upload order, at most 20: for one file its first 20; for several, every file with
   * bad rows keeps its first ones as room allows (after the first 20, a file's first bad row takes
   * the place of the last sample of the file holding the most; see docs/csv-rules.md).
   */
  'badRowSamples': (_sales_v1_BadRow__Output)[];
  /**
   * One entry per uploaded file, in upload order, with that file's own counts (rows, bad_rows
   * and departments above are over all files). A single-file upload has one entry.
   */
  'files': (_sales_v1_FileSummary__Output)[];
  /**
   * The result's page on the web port: `/r/<result_id>`, with `exp` and `sig` query parameters
   * (the same secret and lifetime as download_url, signed for the page only) when the server signs
   * URLs. A path: the web origin is the client's to know.
   */
  'pagePath': (string);
}
