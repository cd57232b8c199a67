/**
 * The result CSV: `Department Name,Total Number of Sales`, one line per department, LF line ends.
 *
 * @module
 */

import type { DepartmentTotals } from "./sales_aggregator.ts";

/** The result file's header line (without its LF). */
const RESULT_HEADER = "Department Name,Total Number of Sales";

/** Bytes per piece of {@linkcode resultCsvChunks}. */
const CSV_CHUNK_BYTES = 64 * 1024;
const QUOTE = 0x22;
const encoder = new TextEncoder();

/**
 * The result CSV of `totals` in pieces of about 64 KiB, written from the names' bytes: the
 * bytes a spreadsheet-safe RFC 4180 writer gives (`_reference.ts` `formatResultCsv` is that writer, for tests), without ever holding the whole file or a string per name.
 */
export function* resultCsvChunks(
  totals: DepartmentTotals,
): Generator<Uint8Array<ArrayBuffer>> {
  let chunk = new Uint8Array(CSV_CHUNK_BYTES);
  let length = encoder.encodeInto(`${RESULT_HEADER}\n`, chunk).written;
  for (let index = 0; index < totals.size; index++) {
    const name = totals.nameBytes(index);
    const digits = totals.totalText(index);
    // Worst case: a prefix, two quotes, every byte a doubled quote, a comma, digits and an LF.
    const needed = 2 * name.length + digits.length + 5;
    if (length + needed > chunk.length) {
      if (length > 0) yield chunk.subarray(0, length);
      chunk = new Uint8Array(Math.max(CSV_CHUNK_BYTES, needed));
      length = 0;
    }
    length = writeDepartmentField(name, chunk, length);
    chunk[length++] = 0x2c;
    for (let i = 0; i < digits.length; i++) {
      chunk[length++] = digits.charCodeAt(i);
    }
    chunk[length++] = 0x0a;
  }
  if (length > 0) yield chunk.subarray(0, length);
}

/**
 * the reference's `formatDepartmentField` on UTF-8 bytes: the characters it looks at are all ASCII, and
 * no byte of a multi-byte UTF-8 character is ASCII, so testing bytes tests characters.
 */
function writeDepartmentField(
  name: Uint8Array,
  out: Uint8Array,
  at: number,
): number {
  const first = name[0];
  // = + - @ '
  const prefixed = first === 0x3d || first === 0x2b || first === 0x2d ||
    first === 0x40 ||
    first === 0x27;
  let quoted = false;
  for (let i = 0; i < name.length && !quoted; i++) {
    const b = name[i];
    quoted = b === QUOTE || b === 0x2c || b === 0x0d || b === 0x0a;
  }
  if (quoted) out[at++] = QUOTE;
  if (prefixed) out[at++] = 0x27;
  if (!quoted) {
    out.set(name, at);
    return at + name.length;
  }
  for (let i = 0; i < name.length; i++) {
    const b = name[i];
    out[at++] = b;
    if (b === QUOTE) out[at++] = QUOTE;
  }
  out[at++] = QUOTE;
  return at;
}
