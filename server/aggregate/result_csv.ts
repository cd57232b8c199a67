/**
 * The result CSV: `Department Name,Total Number of Sales`, one line per department, LF line ends.
 *
 * @module
 */

/** The result file's header line (without its LF). */
export const RESULT_HEADER = "Department Name,Total Number of Sales";

/**
 * Compares strings by Unicode code point (UTF-8 byte order), unlike `<`, which compares UTF-16
 * units and so puts U+1F600 before U+FFFD.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Moves surrogates above U+E000-U+FFFF so that units compare as their code points do. */
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/**
 * One department name as a CSV field: a leading `'` for names a spreadsheet would run as a formula
 * (OWASP CSV injection), then RFC 4180 quoting where needed. Names that already start with `'` get
 * one too, so that `=1+1` and `'=1+1` stay two different fields and a reader strips exactly one.
 */
export function formatDepartmentField(name: string): string {
  const text = /^[=+\-@']/.test(name) ? `'${name}` : name;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The result CSV for department totals, sorted by code point of the name (the aggregator already
 * hands them over in that order, so sorting is skipped then).
 */
export function formatResultCsv(totals: Map<string, bigint>): string {
  let names = [...totals.keys()];
  if (!names.every((name, i) => i === 0 || compareCodePoints(names[i - 1], name) <= 0)) {
    names = names.sort(compareCodePoints);
  }
  const lines = [RESULT_HEADER];
  for (const name of names) lines.push(`${formatDepartmentField(name)},${totals.get(name)}`);
  return lines.join("\n") + "\n";
}
