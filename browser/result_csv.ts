/**
 * Reads the result CSV (`Department Name,Total Number of Sales`, RFC 4180 quoting) back into
 * rows for the page's table and chart. Totals stay `bigint`: they may pass 2^53.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseResultCsv } from "./result_csv.ts";
 *
 * const rows = parseResultCsv('Department Name,Total Number of Sales\n"A, B",12\n');
 * assert.deepEqual(rows, [{ department: "A, B", total: 12n }]);
 * ```
 *
 * @module
 */

/** One department and its total. */
export interface DepartmentTotal {
  department: string;
  total: bigint;
}

/**
 * Parses the result CSV. The server puts a `'` before every name that starts with `=`, `+`, `-`,
 * `@` or `'` (so spreadsheets do not run it as a formula, and `=1+1` and `'=1+1` stay apart);
 * exactly one is removed again for display.
 */
export function parseResultCsv(text: string): DepartmentTotal[] {
  const rows: DepartmentTotal[] = [];
  let position = 0;
  let first = true;
  while (position < text.length) {
    const fields: string[] = [];
    // One record: fields separated by commas, ended by LF (or CRLF) outside quotes.
    for (;;) {
      let field = "";
      if (text[position] === '"') {
        position++;
        for (;;) {
          const quote = text.indexOf('"', position);
          if (quote < 0) throw new Error("Unterminated quoted field in result CSV");
          field += text.slice(position, quote);
          position = quote + 1;
          if (text[position] !== '"') break;
          field += '"';
          position++;
        }
      } else {
        let end = position;
        while (end < text.length && text[end] !== "," && text[end] !== "\n") end++;
        field = text.slice(position, end).replace(/\r$/, "");
        position = end;
      }
      fields.push(field);
      if (text[position] === ",") {
        position++;
        continue;
      }
      if (text[position] === "\r") position++;
      if (text[position] === "\n") position++;
      break;
    }
    if (first) {
      first = false;
      continue; // the header
    }
    if (fields.length !== 2) throw new Error(`Unexpected result CSV record: ${fields.join(",")}`);
    const department = /^'[=+\-@']/.test(fields[0]) ? fields[0].slice(1) : fields[0];
    rows.push({ department, total: BigInt(fields[1]) });
  }
  return rows;
}
