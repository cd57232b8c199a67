/**
 * Byte arrays for tests of stream parsers: joined into one, or cut into the pieces a network may
 * deliver them in, so that every boundary a parser can meet is met.
 *
 * @module
 */

/** The bytes of `parts`, one after the other, in a new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** `bytes` in pieces of `size` bytes (the last may be shorter), as views of it. */
export function chunksOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return chunks;
}

/**
 * `bytes` cut at random places into views of 0 to `maxPieceBytes` bytes each, empty pieces
 * included, since a stream may deliver an empty chunk. Pass a seeded `random` to replay a case.
 */
export function randomPieces(
  bytes: Uint8Array,
  maxPieceBytes: number,
  random: () => number = Math.random,
): Uint8Array[] {
  const pieces = [];
  for (let offset = 0; offset < bytes.length;) {
    const size = Math.floor(random() * (maxPieceBytes + 1));
    pieces.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}
