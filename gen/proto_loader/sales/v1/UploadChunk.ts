// Original file: proto/sales.proto


export interface UploadChunk {
  'data'?: (Buffer | Uint8Array | string);
  /**
   * Set on the first chunk only.
   */
  'filename'?: (string);
}

export interface UploadChunk__Output {
  'data': (Buffer);
  /**
   * Set on the first chunk only.
   */
  'filename': (string);
}
