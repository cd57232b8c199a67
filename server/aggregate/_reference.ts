/**
 * A slow, obviously-correct reference for the aggregation rules in docs/csv-rules.md, used only by tests to
 * check `SalesAggregator` on generated data. It reads the whole input at once, splits it into
 * records with a plain RFC 4180 state machine (stray quotes handled as Python's `csv` module does),
 * then judges each record on its own with strings and regular expressions. Written independently
 * of the fast implementation on purpose: sharing code would share bugs.
 *
 * @module
 */

/** One bad row as the reference reports it; reason wording may differ from the real implementation. */
export interface ReferenceBadRow {
  line: number;
  reason: string;
  raw: string;
}

/** What {@linkcode referenceAggregate} computes. */
export interface ReferenceResult {
  /** Department -> exact total, in Unicode code point order of the names. */
  totals: Map<string, bigint>;
  rows: number;
  badRows: number;
  departments: number;
  badRowSamples: ReferenceBadRow[];
}

/** Options mirroring `SalesAggregatorOptions`. */
export interface ReferenceOptions {
  /**
   * Longest record content in bytes, excluding its LF / CRLF terminator.
   * @default {1048576}
   */
  maxRecordBytes?: number;
  /**
   * How many bad rows to keep as samples.
   * @default {20}
   */
  maxBadRowSamples?: number;
}

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

/** One record cut out of the input, before any judgement. */
interface RawRecord {
  /** 1-based line of the record's first byte: 1 + the number of LF bytes before it. */
  line: number;
  /** The record's bytes without its LF / CRLF terminator (for a discarded record: up to the LF). */
  content: Uint8Array;
  /** Field values after quote processing, as bytes. */
  fields: Uint8Array[];
  /** Content longer than the limit, or the record ran into the discard rule. */
  tooLong: boolean;
  /** Text followed a closing quote (other than a comma or the line break). */
  textAfterQuote: boolean;
  /** The input ended inside a quoted field. */
  eofInQuotes: boolean;
}

type State = "startField" | "unquoted" | "quoted" | "quoteInQuoted";

/** Cuts the input into records, skipping empty lines and a leading BOM. */
function splitRecords(bytes: Uint8Array, maxRecordBytes: number): RawRecord[] {
  const records: RawRecord[] = [];
  let i = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3;
  let linesBefore = 0; // LF bytes seen before index `i`
  const countLfs = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (bytes[k] === LF) linesBefore++;
  };

  while (i < bytes.length) {
    // An empty line: nothing before its LF / CRLF.
    if (bytes[i] === LF) {
      linesBefore++;
      i += 1;
      continue;
    }
    if (bytes[i] === CR && bytes[i + 1] === LF) {
      linesBefore++;
      i += 2;
      continue;
    }

    const start = i;
    const line = linesBefore + 1;
    const fields: Uint8Array[] = [];
    let field: number[] = [];
    let state: State = "startField";
    let textAfterQuote = false;
    let eofInQuotes = false;
    let contentEnd = -1; // index just past the content, once the record has ended
    let next = -1; // index where the next record starts
    let discarded = false;

    while (true) {
      if (i >= bytes.length) {
        if (state === "quoted") eofInQuotes = true;
        fields.push(Uint8Array.from(field));
        contentEnd = i;
        next = i;
        break;
      }
      if (i - start === maxRecordBytes + 2) {
        // maxRecordBytes + 2 bytes taken and still no terminating LF: the content is surely too
        // long, so discard everything up to and including the next LF, quoted or not.
        let lf = i;
        while (lf < bytes.length && bytes[lf] !== LF) lf++;
        discarded = true;
        contentEnd = lf;
        next = lf < bytes.length ? lf + 1 : lf;
        break;
      }
      const b = bytes[i];
      const lineBreak = b === LF ? 1 : b === CR && bytes[i + 1] === LF ? 2 : 0;
      if (state === "quoted") {
        if (b === QUOTE) state = "quoteInQuoted";
        else field.push(b);
        i++;
        continue;
      }
      if (lineBreak > 0) {
        fields.push(Uint8Array.from(field));
        contentEnd = i;
        next = i + lineBreak;
        break;
      }
      if (b === COMMA) {
        fields.push(Uint8Array.from(field));
        field = [];
        state = "startField";
      } else if (state === "startField") {
        if (b === QUOTE) state = "quoted";
        else {
          field.push(b);
          state = "unquoted";
        }
      } else if (state === "unquoted") {
        field.push(b); // a quote inside an unquoted field is data, as in Python's csv
      } else { // quoteInQuoted
        if (b === QUOTE) {
          field.push(QUOTE);
          state = "quoted";
        } else {
          // Python's csv (non-strict) keeps the text and goes on unquoted; our rules call it bad.
          textAfterQuote = true;
          field.push(b);
          state = "unquoted";
        }
      }
      i++;
    }

    const content = bytes.subarray(start, contentEnd);
    records.push({
      line,
      content,
      fields,
      tooLong: discarded || content.length > maxRecordBytes,
      textAfterQuote,
      eofInQuotes,
    });
    countLfs(start, next);
    i = next;
  }
  return records;
}

const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function isHeader(record: RawRecord): boolean {
  if (record.tooLong || record.textAfterQuote || record.eofInQuotes) return false;
  if (record.fields.length !== 3) return false;
  const names = record.fields.map((f) => lenient.decode(f).trim().toLowerCase());
  return names[0] === "department name" && names[1] === "date" && names[2] === "number of sales";
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function isValidDate(text: string): boolean {
  const m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/.exec(text);
  if (m === null) return false;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (year < 1 || year > 9999) return false;
  if (month < 1 || month > 12) return false;
  return day >= 1 && day <= daysInMonth(year, month);
}

const MAX_SALES = 9007199254740991n;

/** Why a row is bad, or the department and sales of a good row. */
function judgeRow(record: RawRecord): { reason: string } | { department: string; sales: bigint } {
  if (record.tooLong) return { reason: "record too long" };
  if (record.eofInQuotes) return { reason: "end of file inside quotes" };
  if (record.textAfterQuote) return { reason: "text after closing quote" };
  if (record.fields.length !== 3) {
    return { reason: `expected 3 fields, got ${record.fields.length}` };
  }
  let department: string;
  try {
    department = strict.decode(record.fields[0]).trim();
  } catch {
    return { reason: "department is not valid UTF-8" };
  }
  if (department === "") return { reason: "empty department" };
  if (!isValidDate(lenient.decode(record.fields[1]).trim())) return { reason: "invalid date" };
  const salesText = lenient.decode(record.fields[2]).trim();
  if (!/^[0-9]+$/.test(salesText)) return { reason: "invalid number of sales" };
  const sales = BigInt(salesText);
  if (sales > MAX_SALES) return { reason: "number of sales too large" };
  return { department, sales };
}

/** Compares strings by Unicode code points (not UTF-16 code units). */
export function compareCodePoints(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let k = 0; k < Math.min(x.length, y.length); k++) {
    if (x[k] !== y[k]) return x[k] - y[k];
  }
  return x.length - y.length;
}

/** Aggregates a whole CSV file held in memory, slowly and simply, per the rules in docs/csv-rules.md. */
export function referenceAggregate(
  bytes: Uint8Array,
  options: ReferenceOptions = {},
): ReferenceResult {
  const maxRecordBytes = options.maxRecordBytes ?? 1_048_576;
  const maxBadRowSamples = options.maxBadRowSamples ?? 20;
  const records = splitRecords(bytes, maxRecordBytes);
  const sums = new Map<string, bigint>();
  const badRowSamples: ReferenceBadRow[] = [];
  let rows = 0;
  let badRows = 0;
  records.forEach((record, index) => {
    if (index === 0 && isHeader(record)) return;
    rows++;
    const verdict = judgeRow(record);
    if ("reason" in verdict) {
      badRows++;
      if (badRowSamples.length < maxBadRowSamples) {
        const raw = Array.from(lenient.decode(record.content)).slice(0, 200).join("");
        badRowSamples.push({ line: record.line, reason: verdict.reason, raw });
      }
      return;
    }
    sums.set(verdict.department, (sums.get(verdict.department) ?? 0n) + verdict.sales);
  });
  const names = [...sums.keys()].sort(compareCodePoints);
  const totals = new Map(names.map((name) => [name, sums.get(name)!]));
  return { totals, rows, badRows, departments: totals.size, badRowSamples };
}

/** The result file's header line (without its LF). */
const RESULT_HEADER = "Department Name,Total Number of Sales";

/**
 * One department name as a CSV field: a leading `'` for names a spreadsheet would run as a formula
 * (OWASP CSV injection), then RFC 4180 quoting where needed. Names that already start with `'` get
 * one too, so that `=1+1` and `'=1+1` stay two different fields and a reader strips exactly one.
 */
function formatDepartmentField(name: string): string {
  const text = /^[=+\-@']/.test(name) ? `'${name}` : name;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The result CSV for department totals, written slowly and simply from strings: what tests and
 * benchmarks compare the byte writer (`result_csv.ts`) and the service's output with.
 */
export function formatResultCsv(totals: Map<string, bigint>): string {
  const names = [...totals.keys()].sort(compareCodePoints);
  const lines = [RESULT_HEADER];
  for (const name of names) lines.push(`${formatDepartmentField(name)},${totals.get(name)}`);
  return lines.join("\n") + "\n";
}
