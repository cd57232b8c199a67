// Original file: proto/sales.proto


export interface UploadChunk {
  'data'?: (Buffer | Uint8Array | string);
  /**
   * Set on the first chunk of each file. On the stream's first chunk it names the first file; on
   * a later chunk it ends the current file and starts the next one, whose first bytes are this
   * chunk's data. Each file keeps its own header, line numbers and gzip detection; a record never
   * spans two files. Clients that send one file set it on the first chunk only, as before.
   */
  'filename'?: (string);
}

export interface UploadChunk__Output {
  'data': (Buffer);
  /**
   * Set on the first chunk of each file. On the stream's first chunk it names the first file; on
   * a later chunk it ends the current file and starts the next one, whose first bytes are this
   * chunk's data. Each file keeps its own header, line numbers and gzip detection; a record never
   * spans two files. Clients that send one file set it on the first chunk only, as before.
   */
  'filename': (string);
}
