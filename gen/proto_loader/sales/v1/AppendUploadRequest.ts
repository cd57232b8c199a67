// Original file: proto/sales.proto

import type { Long } from '@grpc/proto-loader';

export interface AppendUploadRequest {
  'uploadId'?: (string);
  /**
   * Byte offset of data within the upload (all files' bytes counted one after another); must
   * equal the committed offset (or repeat committed bytes).
   */
  'offset'?: (number | string | Long);
  'data'?: (Buffer | Uint8Array | string);
  /**
   * The 0-based index of the file `data` belongs to (always 0 for one file). It never goes back:
   * the first append with a higher index ends the current file and starts that one (files skipped
   * over are empty). Files after the last index appended are empty too. Must be less than the
   * number of `filenames` given to StartUpload (1 when none were).
   */
  'fileIndex'?: (number);
}

export interface AppendUploadRequest__Output {
  'uploadId': (string);
  /**
   * Byte offset of data within the upload (all files' bytes counted one after another); must
   * equal the committed offset (or repeat committed bytes).
   */
  'offset': (string);
  'data': (Buffer);
  /**
   * The 0-based index of the file `data` belongs to (always 0 for one file). It never goes back:
   * the first append with a higher index ends the current file and starts that one (files skipped
   * over are empty). Files after the last index appended are empty too. Must be less than the
   * number of `filenames` given to StartUpload (1 when none were).
   */
  'fileIndex': (number);
}
