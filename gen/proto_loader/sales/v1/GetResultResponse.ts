// Original file: proto/sales.proto

import type { BadRow as _sales_v1_BadRow, BadRow__Output as _sales_v1_BadRow__Output } from '../../sales/v1/BadRow.ts';
import type { FileSummary as _sales_v1_FileSummary, FileSummary__Output as _sales_v1_FileSummary__Output } from '../../sales/v1/FileSummary.ts';
import type { Long } from '@grpc/proto-loader';

export interface GetResultResponse {
  'resultId'?: (string);
  /**
   * A fresh URL of the result CSV on the result server; signed and valid for
   * DOWNLOAD_URL_TTL_SEC from now when SALES_URL_SECRET is set.
   */
  'downloadUrl'?: (string);
  /**
   * The uploaded file's name as the client gave it; empty when it gave none.
   */
  'filename'?: (string);
  /**
   * The name downloads get: `<filename without .csv/.gz>.result.csv`, or `<result_id>.csv`; for
   * several files `<first file's name without .csv/.gz>-and-<N-1>-more.result.csv`.
   */
  'downloadFilename'?: (string);
  'rows'?: (number | string | Long);
  'badRows'?: (number | string | Long);
  'departments'?: (number | string | Long);
  /**
   * As in UploadResponse.
   */
  'badRowSamples'?: (_sales_v1_BadRow)[];
  /**
   * When the result was stored, RFC 3339 in UTC.
   */
  'createdAt'?: (string);
  /**
   * Bytes of the result CSV.
   */
  'sizeBytes'?: (number | string | Long);
  /**
   * False for a result stored before the service kept metadata: filename is then empty, the
   * counts are 0 and created_at is the file's modification time.
   */
  'hasMetadata'?: (boolean);
  /**
   * One entry per uploaded file, as in UploadResponse; `filename` is the first file's name.
   */
  'files'?: (_sales_v1_FileSummary)[];
  /**
   * The result's page on the web port, as in UploadResponse (signed anew, like download_url).
   */
  'pagePath'?: (string);
}

export interface GetResultResponse__Output {
  'resultId': (string);
  /**
   * A fresh URL of the result CSV on the result server; signed and valid for
   * DOWNLOAD_URL_TTL_SEC from now when SALES_URL_SECRET is set.
   */
  'downloadUrl': (string);
  /**
   * The uploaded file's name as the client gave it; empty when it gave none.
   */
  'filename': (string);
  /**
   * The name downloads get: `<filename without .csv/.gz>.result.csv`, or `<result_id>.csv`; for
   * several files `<first file's name without .csv/.gz>-and-<N-1>-more.result.csv`.
   */
  'downloadFilename': (string);
  'rows': (string);
  'badRows': (string);
  'departments': (string);
  /**
   * As in UploadResponse.
   */
  'badRowSamples': (_sales_v1_BadRow__Output)[];
  /**
   * When the result was stored, RFC 3339 in UTC.
   */
  'createdAt': (string);
  /**
   * Bytes of the result CSV.
   */
  'sizeBytes': (string);
  /**
   * False for a result stored before the service kept metadata: filename is then empty, the
   * counts are 0 and created_at is the file's modification time.
   */
  'hasMetadata': (boolean);
  /**
   * One entry per uploaded file, as in UploadResponse; `filename` is the first file's name.
   */
  'files': (_sales_v1_FileSummary__Output)[];
  /**
   * The result's page on the web port, as in UploadResponse (signed anew, like download_url).
   */
  'pagePath': (string);
}
