// Original file: proto/sales.proto

import type { Long } from '@grpc/proto-loader';

export interface StartUploadRequest {
  /**
   * The file's name. With several files, the first file's name (or empty): `filenames` rules.
   */
  'filename'?: (string);
  /**
   * Total size in bytes when known (over all files), 0 when not.
   */
  'size'?: (number | string | Long);
  /**
   * For an upload of several files: every file's name, in upload order (at most 1000). Empty
   * for one file.
   */
  'filenames'?: (string)[];
}

export interface StartUploadRequest__Output {
  /**
   * The file's name. With several files, the first file's name (or empty): `filenames` rules.
   */
  'filename': (string);
  /**
   * Total size in bytes when known (over all files), 0 when not.
   */
  'size': (string);
  /**
   * For an upload of several files: every file's name, in upload order (at most 1000). Empty
   * for one file.
   */
  'filenames': (string)[];
}
