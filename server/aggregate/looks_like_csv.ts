/**
 * The one "does this look like a CSV?" check, shared by the page's upload island and the
 * `aggregate` and `upload` commands, so that all three refuse the same files in the same words.
 * The service itself refuses nothing on content: it counts bad rows.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { csvRefusal } from "./looks_like_csv.ts";
 * equal(csvRefusal("a.csv", 0, new Uint8Array()), "“a.csv” is empty. Choose a file with a header and rows.");
 * equal(csvRefusal("a.csv", 4, new TextEncoder().encode("a,b\n")), undefined);
 * ```
 *
 * @module
 */

/** How many bytes of a file's head {@linkcode csvRefusal} needs. */
export const SNIFF_BYTES = 4096;

/**
 * Why a file should not be sent as CSV, in the page's words, or undefined when it may be one:
 * it is empty, or its head (the first {@linkcode SNIFF_BYTES}) holds NUL bytes and is not gzip
 * (`1f 8b`). Text never holds NUL; images, archives and spreadsheets do.
 */
export function csvRefusal(name: string, size: number, head: Uint8Array): string | undefined {
  if (size === 0) return `“${name}” is empty. Choose a file with a header and rows.`;
  const sniffed = head.subarray(0, SNIFF_BYTES);
  const gzip = sniffed[0] === 0x1f && sniffed[1] === 0x8b;
  if (!gzip && sniffed.includes(0)) {
    return `“${name}” does not look like a CSV file: it contains binary data.`;
  }
  return undefined;
}
