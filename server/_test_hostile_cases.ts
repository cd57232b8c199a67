/**
 * The hostile and broken input corpus: every case, how its bytes are made (a small file
 * in this folder, or a deterministic generator for the big ones, never a committed big file), the
 * server settings it needs, and the outcome the contract demands: an exact result (rows, bad rows,
 * departments and the whole result CSV) or an exact gRPC status. The outcomes follow the CSV rules
 * (docs/csv-rules.md) and the upload limits (docs/security.md), worked out by hand from those rules (the `why` of each case says how),
 * not by running the implementation.
 *
 * `hostile_test.ts` runs every case through a real server on every listed upload path, at the
 * `"test"` scale; `bench/hostile_bench.ts` runs the big ones at the `"full"` scale, too slow for the
 * test suite (200 MB without a line break, 100 MB after an unterminated quote, 1,000,000
 * departments, a gzip bomb).
 *
 * @example
 * ```ts
 * import { HOSTILE_CASES } from "./_test_hostile_cases.ts";
 * const empty = HOSTILE_CASES.find((c) => c.name === "empty file")!;
 * if (empty.kind !== "upload" || empty.input("test").size !== 0) throw new Error();
 * ```
 *
 * @module
 */

import { gzipSync } from "node:zlib";

/** How an upload reaches the server. */
export type UploadPath =
  /** `UploadCSV`: the whole file in one message. */
  | "unary"
  /** `UploadCSVStream`: client streaming. */
  | "stream"
  /** `StartUpload` with the size, `AppendUpload` in the server's chunk size, `FinishUpload`. */
  | "chunked"
  /** The same with the size left unknown (0), so only the bytes themselves can hit a limit. */
  | "chunked-unsized"
  /** The web page's path: the island's gRPC-Web client (`uploadFile`), chunked with Blob bodies. */
  | "browser";

/** The paths every upload can take. */
export const ALL_PATHS: readonly UploadPath[] = ["unary", "stream", "chunked", "browser"];

/** `"test"`: sizes small enough for the test suite; `"full"`: the real sizes, for the benchmark. */
export type Scale = "test" | "full";

/** The bytes of one upload, produced on demand. */
export interface HostileInput {
  /** Total bytes. */
  size: number;
  /** The bytes in order, in pieces of at most 1 MiB; each call starts over. Pieces may be reused. */
  chunks(): Iterable<Uint8Array>;
}

/** A finished upload, exactly. */
export interface ResultOutcome {
  rows: number;
  badRows: number;
  departments: number;
  /** The whole result CSV. */
  resultCsv: string;
  /** The first bad rows: line and reason always, raw when given. */
  badRowSamples?: { line: number; reason: string; raw?: string }[];
}

/** A refused upload. */
export interface ErrorOutcome {
  /** The gRPC status name. */
  status: "INVALID_ARGUMENT" | "RESOURCE_EXHAUSTED" | "NOT_FOUND";
  /** What the message must say. */
  message: RegExp;
}

/** What a case must end with. */
export type Outcome = ResultOutcome | ErrorOutcome;

/** True for a refusal. */
export function isErrorOutcome(outcome: Outcome): outcome is ErrorOutcome {
  return "status" in outcome;
}

/** One upload of hostile bytes, run on each of `paths`. */
export interface UploadCase {
  kind: "upload";
  name: string;
  /** Why the outcome is what the rules say. */
  why: string;
  /** Server environment on top of the defaults (the limit under test). */
  env?: (scale: Scale) => Record<string, string>;
  input: (scale: Scale) => HostileInput;
  paths: readonly UploadPath[];
  expected: (scale: Scale) => Outcome;
  /** Paths whose outcome differs (a message-size limit hits only the big messages). */
  expectedOn?: Partial<Record<UploadPath, Outcome>>;
  /** Bytes per `UploadCSVStream` message. @default {the input's own pieces} */
  streamChunkBytes?: number;
  /** Bytes per `AppendUpload`. @default {the chunk size the server suggests} */
  appendChunkBytes?: number;
  /**
   * Server memory must not grow with this input: the tests also run it against a server child
   * process and bound the growth of its peak RSS (`VmHWM`) well below the input's size.
   */
  boundedMemory?: boolean;
}

/** A limit that needs a sequence of calls rather than one upload; `cases_test.ts` drives it. */
export interface ScenarioCase {
  kind: "scenario";
  name: string;
  /** The steps and the outcome of each. */
  why: string;
  env: (scale: Scale) => Record<string, string>;
  /** The refusal the scenario provokes. */
  expected: ErrorOutcome & {
    /** A gRPC trailer the refusal carries, with its value. */
    trailer?: [name: string, value: string];
  };
}

/** One corpus entry. */
export type HostileCase = UploadCase | ScenarioCase;

const HEADER = "Department Name,Date,Number of Sales";
/** Every result CSV starts with this line. */
export const RESULT_HEADER = "Department Name,Total Number of Sales\n";
const MIB = 1024 * 1024;
/** The per-record limit of the CSV rules (1 MiB, not counting the line terminator). */
export const MAX_RECORD_BYTES = 1_048_576;
const RECORD_TOO_LONG = `record exceeds ${MAX_RECORD_BYTES} bytes`;
const TOO_LARGE = /^Upload too large: (262 bytes declared, )?the limit is 261 bytes$/;
const encoder = new TextEncoder();
/** The corpus files, kept in the repository's testdata folder. */
const HOSTILE_DIR = new URL("../testdata/hostile/", import.meta.url);

/** A committed file of this folder. */
function file(name: string): HostileInput {
  return bytesInput(Deno.readFileSync(new URL(name, HOSTILE_DIR)));
}

function bytesInput(bytes: Uint8Array): HostileInput {
  return {
    size: bytes.length,
    *chunks() {
      for (let i = 0; i < bytes.length; i += MIB) yield bytes.subarray(i, i + MIB);
    },
  };
}

/** The result CSV of the committed `sales.csv` (and of `sales.csv.gz`), worked out by hand. */
const SALES_RESULT: ResultOutcome = {
  rows: 9,
  badRows: 2,
  departments: 4,
  resultCsv: RESULT_HEADER +
    '"Books, Music",79\nElectronics,218\n"Say ""Hi""",7\nToys,97\n',
  badRowSamples: [
    { line: 5, reason: "invalid date", raw: "Garden,2024-02-30,17" },
    { line: 9, reason: "invalid number of sales", raw: "Toys,2024-01-04,x" },
  ],
};

/** An empty upload and one whose rows are all bad share this result file. */
const EMPTY_RESULT_CSV = RESULT_HEADER;

// ---------------------------------------------------------------------------------------------
// Generators of the big inputs. Each is deterministic, streams its bytes in 1 MiB pieces and
// computes its expected outcome by arithmetic, never by aggregating.
// ---------------------------------------------------------------------------------------------

/** Sizes of the generated cases. */
export const SIZES = {
  noLineBreakBytes: { test: 20_000_000, full: 200_000_000 },
  unterminatedQuoteBytes: { test: 10_000_000, full: 100_000_000 },
  departments: { test: 100_000, full: 1_000_000 },
  /** Inflated size of the gzip bomb, and the MAX_UPLOAD_BYTES that stops it. */
  gzipBomb: {
    test: { inflatedBytes: 1024 * MIB, maxUploadBytes: 8 * MIB },
    full: { inflatedBytes: 100 * 1024 * MIB, maxUploadBytes: 1024 * MIB },
  },
} as const;

/**
 * `size` bytes without a single LF: quotes, doubled quotes, commas and lone CRs keep the record
 * splitter busy. The first byte is `a`, so it is not mistaken for gzip.
 */
export function noLineBreak(size: number): HostileInput {
  const pattern = encoder.encode(`a,"b""c",d"e,\r`);
  const piece = new Uint8Array(MIB - (MIB % pattern.length));
  for (let i = 0; i < piece.length; i++) piece[i] = pattern[i % pattern.length];
  return {
    size,
    *chunks() {
      for (let sent = 0; sent < size; sent += piece.length) {
        yield piece.subarray(0, Math.min(piece.length, size - sent));
      }
    },
  };
}

const QUOTE_NAMES = ["Auto", "Food", "Home", "Toys"];
/** Row `k` of the unterminated-quote file: always 18 bytes. */
function quoteRow(k: number): string {
  const day = String(1 + (k % 28)).padStart(2, "0");
  return `${QUOTE_NAMES[k % 4]},2024-01-${day},${k % 10}\n`;
}

/** The unterminated-quote file: `"` + header + as many 18-byte rows as fit in `size`. */
function unterminatedQuoteLayout(size: number) {
  const head = `"Sales export\n${HEADER}\n`;
  const rowCount = Math.floor((size - head.length) / 18);
  // The record opened by the quote runs over LFs (they are data inside quotes) until it passes
  // MAX_RECORD_BYTES; then bytes are dropped up to and including the next LF. Row k's LF is at
  // offset head.length - 1 + 18 (k + 1). The first row whose LF comes after the limit is the last
  // one swallowed; LFs right at the limit would make the rule's reading matter, so none may be there.
  const lineFeedAt = (k: number) => head.length - 1 + 18 * (k + 1);
  let swallowed = 0;
  while (lineFeedAt(swallowed) < MAX_RECORD_BYTES) swallowed++;
  const nearest = Math.min(
    Math.abs(lineFeedAt(swallowed) - MAX_RECORD_BYTES),
    Math.abs(lineFeedAt(swallowed - 1) - MAX_RECORD_BYTES),
  );
  if (nearest <= 3) throw new Error("An LF sits at the record limit: change the header or rows");
  return { head, rowCount, firstKept: swallowed + 1 };
}

/**
 * An unterminated quote at the very start of a file of about `size` bytes: the whole first MiB
 * (header included) becomes one bad row; every row after it counts as usual.
 */
export function unterminatedQuote(size: number): HostileInput {
  const { head, rowCount } = unterminatedQuoteLayout(size);
  const rowsPerPiece = Math.floor(MIB / 18);
  return {
    size: head.length + 18 * rowCount,
    *chunks() {
      yield encoder.encode(head);
      for (let start = 0; start < rowCount; start += rowsPerPiece) {
        const end = Math.min(rowCount, start + rowsPerPiece);
        let text = "";
        for (let k = start; k < end; k++) text += quoteRow(k);
        yield encoder.encode(text);
      }
    },
  };
}

/** The outcome of {@linkcode unterminatedQuote} for the same `size`, by arithmetic. */
export function unterminatedQuoteOutcome(size: number): ResultOutcome {
  const { head, rowCount, firstKept } = unterminatedQuoteLayout(size);
  const totals = new Map(QUOTE_NAMES.map((name) => [name, 0]));
  for (let k = firstKept; k < rowCount; k++) {
    totals.set(QUOTE_NAMES[k % 4], totals.get(QUOTE_NAMES[k % 4])! + (k % 10));
  }
  return {
    rows: 1 + rowCount - firstKept,
    badRows: 1,
    departments: 4,
    resultCsv: RESULT_HEADER + [...totals].map(([name, total]) => `${name},${total}\n`).join(""),
    badRowSamples: [{
      line: 1,
      reason: RECORD_TOO_LONG,
      raw: (head + Array.from({ length: 12 }, (_, k) => quoteRow(k)).join("")).slice(0, 200),
    }],
  };
}

/** Name of department `i`: zero-padded, so code point order is numeric order. */
function departmentName(i: number): string {
  return `Dept ${String(i).padStart(7, "0")}`;
}

/**
 * `count` distinct departments, one row each, in a scrambled order (row j is department
 * j * 7919 mod count) so the result's order comes from sorting; department i sells i mod 1000.
 */
export function distinctDepartments(count: number): HostileInput {
  if (gcd(7919, count) !== 1) throw new Error(`7919 must be coprime with ${count}`);
  const rowsPerPiece = 32_768;
  let size = HEADER.length + 1;
  for (let i = 0; i < count; i++) size += `${departmentName(i)},2024-03-15,${i % 1000}\n`.length;
  return {
    size,
    *chunks() {
      yield encoder.encode(HEADER + "\n");
      for (let start = 0; start < count; start += rowsPerPiece) {
        let text = "";
        for (let j = start; j < Math.min(count, start + rowsPerPiece); j++) {
          const i = (j * 7919) % count;
          text += `${departmentName(i)},2024-03-15,${i % 1000}\n`;
        }
        yield encoder.encode(text);
      }
    },
  };
}

function distinctDepartmentsOutcome(count: number): ResultOutcome {
  const lines = [RESULT_HEADER];
  for (let i = 0; i < count; i++) lines.push(`${departmentName(i)},${i % 1000}\n`);
  return { rows: count, badRows: 0, departments: count, resultCsv: lines.join("") };
}

/** MAX_DEPARTMENTS set to the test's count at test scale; the default (1,000,000) at full scale. */
function departmentsEnv(scale: Scale): Record<string, string> {
  return scale === "test" ? { MAX_DEPARTMENTS: String(SIZES.departments.test) } : {};
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

const bombMembers = new Map<number, Uint8Array>();
/**
 * A gzip bomb: `inflatedBytes` of zeros as identical gzip members of 16 MiB each (~16 KB
 * compressed, ~1000x), which `cat` would make of `gzip -9` output and `gunzip` reads whole.
 */
export function gzipBomb(inflatedBytes: number): HostileInput {
  const memberBytes = 16 * MIB;
  if (inflatedBytes % memberBytes !== 0) throw new Error("Inflate to a multiple of 16 MiB");
  let member = bombMembers.get(memberBytes);
  if (member === undefined) {
    member = new Uint8Array(gzipSync(new Uint8Array(memberBytes), { level: 9 }));
    bombMembers.set(memberBytes, member);
  }
  const count = inflatedBytes / memberBytes;
  const membersPerPiece = Math.floor(MIB / member.length);
  const piece = new Uint8Array(member.length * membersPerPiece);
  for (let i = 0; i < membersPerPiece; i++) piece.set(member, i * member.length);
  return {
    size: member.length * count,
    *chunks() {
      for (let sent = 0; sent < count; sent += membersPerPiece) {
        yield piece.subarray(0, member.length * Math.min(membersPerPiece, count - sent));
      }
    },
  };
}

/** Pieces of text, encoded as they are produced. */
function textInput(pieces: () => Iterable<string>): HostileInput {
  let size = 0;
  for (const piece of pieces()) size += encoder.encode(piece).length;
  return {
    size,
    *chunks() {
      for (const piece of pieces()) yield encoder.encode(piece);
    },
  };
}

const LONG = {
  a: "A".repeat(5000),
  b: "B".repeat(4096),
  c: "C".repeat(100_000),
  d: `D, ${"d".repeat(3000)}`,
  f: `=${"F".repeat(4999)}`,
  e: (i: number) => `E${String(i).padStart(4, "0")}${"e".repeat(2995)}`,
};

/** Very long department names, above and at the aggregator's 4 KiB name cache, quoted, padded. */
function longNames(): HostileInput {
  return textInput(function* () {
    yield `${HEADER}\n`;
    yield `${LONG.a},2024-01-01,1\n"${LONG.a}",2024-01-02,2\n ${LONG.a} ,2024-01-03,3\n`;
    yield `${LONG.b},2024-01-01,4\n${LONG.b},2024-01-02,5\n`;
    yield `${LONG.c},2024-01-01,7\n"${LONG.c}",2024-01-02,8\n`;
    yield `"${LONG.d}",2024-01-01,10\n"${LONG.d}",2024-01-02,11\n`;
    for (let i = 0; i < 1000; i++) yield `${LONG.e(i)},2024-01-01,${i % 7}\n`;
    for (let i = 999; i >= 0; i--) yield `"${LONG.e(i)}",2024-01-02,1\r\n`;
    yield `${LONG.f},2024-01-01,12\n`;
  });
}

function longNamesOutcome(): ResultOutcome {
  let csv = RESULT_HEADER + `'${LONG.f},12\n${LONG.a},6\n${LONG.b},9\n${LONG.c},15\n`;
  csv += `"${LONG.d}",21\n`;
  for (let i = 0; i < 1000; i++) csv += `${LONG.e(i)},${(i % 7) + 1}\n`;
  return { rows: 2010, badRows: 0, departments: 1005, resultCsv: csv };
}

const LIMIT_NAME = "L".repeat(MAX_RECORD_BYTES - ",2024-01-01,1".length);
/**
 * Records right at and just past 1 MiB: exactly 1,048,576 bytes (before its CRLF) is good; an
 * unterminated quote running past the limit, and a plain record of 1,048,577 bytes, are one bad
 * row each, and the row after each still counts.
 */
function recordLimit(): HostileInput {
  return textInput(function* () {
    yield `${HEADER}\n`;
    yield `${LIMIT_NAME},2024-01-01,1\r\n`;
    yield `"${"M".repeat(MAX_RECORD_BYTES + 1)}\n`;
    yield "Toys,2024-01-01,2\n";
    yield `${"N".repeat(MAX_RECORD_BYTES + 1 - ",2024-01-01,1".length)},2024-01-01,1\n`;
    yield "Toys,2024-01-01,3";
  });
}

/** About 200 KB of good rows: more than a 64 KiB message, in one piece. */
function twoHundredKilobytes(): HostileInput {
  const rows = Array.from({ length: 10_000 }, (_, i) => `Toys,2024-01-01,${i % 10}\n`).join("");
  return bytesInput(encoder.encode(`${HEADER}\n${rows}`));
}

const salesPlusOneByte = (): HostileInput => {
  const sales = Deno.readFileSync(new URL("sales.csv", HOSTILE_DIR));
  // One more empty line: not a row, but one byte past the limit.
  return bytesInput(new Uint8Array([...sales, 0x0a]));
};

const SALES_BYTES = 261;

/** Every case of the corpus. */
export const HOSTILE_CASES: readonly HostileCase[] = [
  {
    kind: "upload",
    name: "empty file",
    why: "No bytes: no header, no rows; the result is the header line alone.",
    input: () => file("empty.csv"),
    paths: ALL_PATHS,
    expected: () => ({ rows: 0, badRows: 0, departments: 0, resultCsv: EMPTY_RESULT_CSV }),
  },
  {
    kind: "upload",
    name: "header only",
    why: "A BOM, the header and CRLF: the BOM is ignored and the header is not a row.",
    input: () => file("header_only.csv"),
    paths: ALL_PATHS,
    expected: () => ({ rows: 0, badRows: 0, departments: 0, resultCsv: EMPTY_RESULT_CSV }),
  },
  {
    kind: "upload",
    name: "binary garbage",
    why:
      "8 KiB of xorshift32 bytes (seed 0x5eed) after a PNG signature: 41 LFs and 25 quotes cut " +
      "it into 42 records (the signature's CR LF ends the first), none of them a good row.",
    input: () => file("binary_garbage.bin"),
    paths: ALL_PATHS,
    expected: () => ({ rows: 42, badRows: 42, departments: 0, resultCsv: EMPTY_RESULT_CSV }),
  },
  {
    kind: "upload",
    name: "NUL bytes",
    why: "NUL is valid UTF-8 and trim() keeps it: `To\\0ys` and `\\0` are departments of their " +
      "own; NUL in a date or a number makes the row bad; a line of NULs is one field.",
    input: () => file("nul_bytes.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 7,
      badRows: 3,
      departments: 3,
      resultCsv: RESULT_HEADER + "\0,1\nTo\0ys,7\nToys,8\n",
      badRowSamples: [
        { line: 5, reason: "invalid number of sales", raw: "Toys,2024-01-01,\0" },
        { line: 6, reason: "invalid date", raw: "Toys,2024-01-01\0,2" },
        { line: 7, reason: "expected 3 fields, found 1", raw: "\0\0\0\0" },
      ],
    }),
  },
  {
    kind: "upload",
    name: "invalid UTF-8",
    why: "Bad bytes (0xFF 0xFE, an overlong C0 AF, a UTF-16 surrogate ED A0 80, a cut E2 82, a " +
      "code point past U+10FFFF) in a name make the row bad, never a U+FFFD department; in a " +
      "date or number too. Valid U+FFFD and U+1F600 names count, sorted by code point.",
    input: () => file("invalid_utf8.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 11,
      badRows: 7,
      departments: 3,
      resultCsv: RESULT_HEADER + "Café,10\n\uFFFD,3\n\u{1F600},2\n",
      badRowSamples: [
        { line: 3, reason: "department is not valid UTF-8", raw: "\uFFFD\uFFFD,2024-01-01,1" },
        { line: 4, reason: "department is not valid UTF-8" },
        { line: 5, reason: "department is not valid UTF-8" },
        { line: 6, reason: "department is not valid UTF-8" },
        { line: 7, reason: "invalid number of sales" },
        { line: 8, reason: "invalid date" },
        { line: 10, reason: "department is not valid UTF-8" },
      ],
    }),
  },
  {
    kind: "upload",
    name: "CR-only line endings",
    why: "A lone CR is data, not a line break: the whole file is one record of 7 fields.",
    input: () => file("cr_only.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 1,
      badRows: 1,
      departments: 0,
      resultCsv: EMPTY_RESULT_CSV,
      badRowSamples: [{ line: 1, reason: "expected 3 fields, found 7" }],
    }),
  },
  {
    kind: "upload",
    name: "mixed line endings",
    why: "BOM, then LF, CRLF, empty CRLF and LF lines (ignored), a lone CR joining two rows into " +
      "one of 5 fields, a CR left before CRLF and at the end of the file (trim() removes it), and " +
      "a quoted name holding CRLF, which stays CRLF.",
    input: () => file("mixed_line_endings.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 6,
      badRows: 1,
      departments: 3,
      resultCsv: RESULT_HEADER + 'Games,9\n"Multi\r\nLine",2\nToys,7\n',
      badRowSamples: [{ line: 6, reason: "expected 3 fields, found 5" }],
    }),
  },
  {
    kind: "upload",
    name: "quoted header",
    why: "The first record, quoted, padded and in mixed case, is the header; the same header " +
      "later is a row with a bad date. Quoted values count like plain ones.",
    input: () => file("quoted_header.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 3,
      badRows: 1,
      departments: 1,
      resultCsv: RESULT_HEADER + "Toys,7\n",
      badRowSamples: [{ line: 3, reason: "invalid date" }],
    }),
  },
  {
    kind: "upload",
    name: "very long department names",
    why: "Names of 5000 bytes (plain, quoted, padded: one department), exactly 4096, 100,000, a " +
      "quoted one with a comma, 1000 distinct names of 3000 bytes seen twice, and a 5000-byte " +
      "formula name: totals exact, names whole in the result.",
    input: () => longNames(),
    paths: ALL_PATHS,
    expected: () => longNamesOutcome(),
  },
  {
    kind: "upload",
    name: "formula-injection names",
    why: "Names starting with =, +, -, @ or ' (also after trimming) get a leading ' in the " +
      "result CSV ('quoted becomes ''quoted, so a reader strips exactly one); the order stays " +
      "that of the real names, so (paren sorts between 'quoted and '+1.",
    input: () => file("formula_injection.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 9,
      badRows: 0,
      departments: 9,
      resultCsv: RESULT_HEADER +
        "''quoted,8\n(paren,7\n'+1,2\n'-2,3\n" +
        `"'=HYPERLINK(""http://x"",""y"")",6\n'=SUM(A1:A9),1\n'=trim,5\n'@cmd,4\nSafe=not,9\n`,
    }),
  },
  {
    kind: "upload",
    name: "totals past 2^53",
    why: "Four rows of 2^53 - 1 (one with leading zeros) and 5 give 36028797018963969; " +
      "9007199254740990 + 1 + 1 and 9007199254740991 + 2 cross 2^53 exactly; 2^53 and larger, " +
      "signs, exponents, decimals and separators are bad rows; all-zero sales list 0.",
    input: () => file("big_totals.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 20,
      badRows: 7,
      departments: 5,
      resultCsv: RESULT_HEADER +
        "Max,36028797018963969\nNear,9007199254740992\nOdd,9007199254740993\nSmall,1\nZero,0\n",
      badRowSamples: [
        { line: 4, reason: "number of sales exceeds 9007199254740991" },
        { line: 12, reason: "number of sales exceeds 9007199254740991" },
        { line: 17, reason: "invalid number of sales" },
        { line: 18, reason: "invalid number of sales" },
        { line: 19, reason: "invalid number of sales" },
        { line: 20, reason: "invalid number of sales" },
        { line: 21, reason: "invalid number of sales" },
      ],
    }),
  },
  {
    kind: "upload",
    name: "impossible and edge dates",
    why: "2023-02-29, 0000-01-01, 1900-02-29, month 13, April 31, day 0, short or slashed forms, " +
      "full-width digits, an empty date and year 10000 are bad; 2024-02-29, 2000-02-29, " +
      "0001-01-01, 9999-12-31, a padded and a quoted date are good.",
    input: () => file("dates.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 20,
      badRows: 14,
      departments: 1,
      resultCsv: RESULT_HEADER + "Good,6\n",
      badRowSamples: [3, 4, 7, 9, 10, 11, 12, 13, 14, 15, 17, 18, 20, 21].map((line) => ({
        line,
        reason: "invalid date",
      })),
    }),
  },
  {
    kind: "upload",
    name: "wrong field counts",
    why: "2, 4 (also by a trailing comma), 1, 10 fields, a quoted whole row (1 field), a line of " +
      "spaces (a record, 1 field) are bad; `,,` has 3 fields and fails on its date; the empty " +
      "line is ignored and not counted.",
    input: () => file("wrong_field_counts.csv"),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 11,
      badRows: 9,
      departments: 1,
      resultCsv: RESULT_HEADER + "Toys,7\n",
      badRowSamples: [
        { line: 2, reason: "expected 3 fields, found 2" },
        { line: 3, reason: "expected 3 fields, found 4" },
        { line: 4, reason: "expected 3 fields, found 4" },
        { line: 5, reason: "expected 3 fields, found 1" },
        { line: 7, reason: "expected 3 fields, found 1", raw: "   " },
        { line: 8, reason: "invalid date" },
        { line: 10, reason: "expected 3 fields, found 1" },
        { line: 11, reason: "expected 3 fields, found 2" },
        { line: 12, reason: "expected 3 fields, found 10" },
      ],
    }),
  },
  {
    kind: "upload",
    name: "per-record 1 MiB limit",
    why: "A record of exactly 1,048,576 bytes before its CRLF is a good row; an unterminated " +
      "quote past the limit is dropped up to the next LF although inside quotes; a record of " +
      "1,048,577 bytes is bad; the rows after each still count.",
    input: () => recordLimit(),
    paths: ALL_PATHS,
    expected: () => ({
      rows: 5,
      badRows: 2,
      departments: 2,
      resultCsv: `${RESULT_HEADER}${LIMIT_NAME},1\nToys,5\n`,
      badRowSamples: [
        { line: 3, reason: RECORD_TOO_LONG, raw: `"${"M".repeat(199)}` },
        { line: 5, reason: RECORD_TOO_LONG, raw: "N".repeat(200) },
      ],
    }),
  },
  {
    kind: "upload",
    name: "200 MB without a line break",
    why: "One record that never ends: one bad row, memory flat while the rest is skipped.",
    input: (scale) => noLineBreak(SIZES.noLineBreakBytes[scale]),
    paths: ["stream", "chunked", "browser"],
    expected: () => ({
      rows: 1,
      badRows: 1,
      departments: 0,
      resultCsv: EMPTY_RESULT_CSV,
      badRowSamples: [
        { line: 1, reason: RECORD_TOO_LONG, raw: `a,"b""c",d"e,\r`.repeat(15).slice(0, 200) },
      ],
    }),
    boundedMemory: true,
  },
  {
    kind: "upload",
    name: "unterminated quote at the start of a 100 MB file",
    why: "The quote opens a field that swallows the header and every row up to the 1 MiB limit " +
      "as one bad row; the rest of the file aggregates normally.",
    input: (scale) => unterminatedQuote(SIZES.unterminatedQuoteBytes[scale]),
    paths: ["stream", "chunked"],
    expected: (scale) => unterminatedQuoteOutcome(SIZES.unterminatedQuoteBytes[scale]),
    boundedMemory: true,
  },
  {
    kind: "upload",
    name: "1,000,000 distinct departments",
    why: "As many departments as MAX_DEPARTMENTS allows (the default 1,000,000 at full scale, " +
      "set to the test's count at test scale) all succeed, sorted, each with its total.",
    env: departmentsEnv,
    input: (scale) => distinctDepartments(SIZES.departments[scale]),
    paths: ["unary", "stream", "chunked"],
    expected: (scale) => distinctDepartmentsOutcome(SIZES.departments[scale]),
  },
  {
    kind: "upload",
    name: "MAX_DEPARTMENTS plus one department",
    why: "One department more than MAX_DEPARTMENTS is refused, whatever the path.",
    env: departmentsEnv,
    input: (scale) => distinctDepartments(SIZES.departments[scale] + 1),
    paths: ["unary", "stream", "chunked"],
    expected: (scale) => ({
      status: "RESOURCE_EXHAUSTED",
      message: new RegExp(
        `^Too many departments: the limit is ${SIZES.departments[scale]} distinct departments`,
      ),
    }),
  },
  {
    kind: "upload",
    name: "MAX_DEPARTMENTS exactly, every path",
    why: "sales.csv has 4 departments (one seen twice, one only in bad rows is none): under " +
      "MAX_DEPARTMENTS=4 it succeeds on every path, gzip-compressed too.",
    env: () => ({ MAX_DEPARTMENTS: "4" }),
    input: () => file("sales.csv.gz"),
    paths: ALL_PATHS,
    expected: () => SALES_RESULT,
  },
  {
    kind: "upload",
    name: "MAX_DEPARTMENTS plus one, every path",
    why: "The same file under MAX_DEPARTMENTS=3 is refused on every path.",
    env: () => ({ MAX_DEPARTMENTS: "3" }),
    input: () => file("sales.csv.gz"),
    paths: [...ALL_PATHS, "chunked-unsized"],
    expected: () => ({
      status: "RESOURCE_EXHAUSTED",
      message: /^Too many departments: the limit is 3 distinct departments per upload/,
    }),
  },
  {
    kind: "upload",
    name: "gzip-compressed CSV",
    why: "`sales.csv.gz` (gzip -9n of sales.csv) is recognized by its magic bytes and gives the " +
      "plain file's result on every path.",
    input: () => file("sales.csv.gz"),
    paths: ALL_PATHS,
    expected: () => SALES_RESULT,
  },
  {
    kind: "upload",
    name: "plain CSV the gzip case is compared with",
    why: "sales.csv: a BOM-free CRLF file with quoted names, a doubled quote, a bad date and a " +
      "bad number.",
    input: () => file("sales.csv"),
    paths: ALL_PATHS,
    expected: () => SALES_RESULT,
  },
  {
    kind: "upload",
    name: "corrupt gzip: wrong CRC-32",
    why: "One flipped bit in the deflate data of sales.csv.gz still inflates (to Electronics " +
      "220 instead of 120); only the CRC-32 tells, and it must.",
    input: () => file("corrupt_data.csv.gz"),
    paths: ALL_PATHS,
    expected: () => ({ status: "INVALID_ARGUMENT", message: /^The gzip data is corrupt/ }),
  },
  {
    kind: "upload",
    name: "corrupt gzip: truncated",
    why: "The first half of sales.csv.gz.",
    input: () => file("truncated.csv.gz"),
    paths: ALL_PATHS,
    expected: () => ({
      status: "INVALID_ARGUMENT",
      message: /^The gzip data is (corrupt|truncated)/,
    }),
  },
  {
    kind: "upload",
    name: "gzip bomb",
    why: "Zeros compressed ~1000x (1 GiB in ~1 MB for the test, 100 GiB in ~100 MB at full " +
      "scale): refused once the inflated bytes pass MAX_UPLOAD_BYTES, without inflating the rest.",
    env: (scale) => ({ MAX_UPLOAD_BYTES: String(SIZES.gzipBomb[scale].maxUploadBytes) }),
    input: (scale) => gzipBomb(SIZES.gzipBomb[scale].inflatedBytes),
    paths: ALL_PATHS,
    expected: () => ({
      status: "RESOURCE_EXHAUSTED",
      message: /^Upload too large: the limit is \d+ bytes \(after decompression\)/,
    }),
    boundedMemory: true,
  },
  {
    kind: "upload",
    name: "MAX_UPLOAD_BYTES exactly",
    why: "A 261-byte file under MAX_UPLOAD_BYTES=261, sent 16 bytes at a time, succeeds.",
    env: () => ({ MAX_UPLOAD_BYTES: String(SALES_BYTES) }),
    input: () => file("sales.csv"),
    paths: [...ALL_PATHS, "chunked-unsized"],
    streamChunkBytes: 16,
    appendChunkBytes: 16,
    expected: () => SALES_RESULT,
  },
  {
    kind: "upload",
    name: "MAX_UPLOAD_BYTES plus one byte",
    why: "One byte more is refused on every path: by StartUpload when the size is declared, by " +
      "the append that passes the limit when it is not.",
    env: () => ({ MAX_UPLOAD_BYTES: String(SALES_BYTES) }),
    input: () => salesPlusOneByte(),
    paths: [...ALL_PATHS, "chunked-unsized"],
    streamChunkBytes: 16,
    appendChunkBytes: 16,
    expected: () => ({ status: "RESOURCE_EXHAUSTED", message: TOO_LARGE }),
  },
  {
    kind: "upload",
    name: "MAX_UPLOAD_BYTES counts inflated bytes",
    why: "sales.csv.gz is 165 bytes but inflates to 261: refused under MAX_UPLOAD_BYTES=260.",
    env: () => ({ MAX_UPLOAD_BYTES: String(SALES_BYTES - 1) }),
    input: () => file("sales.csv.gz"),
    paths: [...ALL_PATHS, "chunked-unsized"],
    expected: () => ({
      status: "RESOURCE_EXHAUSTED",
      message: /^Upload too large: the limit is 260 bytes \(after decompression\)/,
    }),
  },
  {
    kind: "upload",
    name: "max message size",
    why: "Under MAX_MESSAGE_BYTES=65536 a 200 KB file in one UploadCSV message, or streamed in " +
      "100 KiB messages, is refused; the chunked paths use the chunk size the server suggests " +
      "(63 KiB) and succeed.",
    env: () => ({ MAX_MESSAGE_BYTES: "65536" }),
    input: () => twoHundredKilobytes(),
    paths: ALL_PATHS,
    streamChunkBytes: 100 * 1024,
    expected: () => ({
      rows: 10_000,
      badRows: 0,
      departments: 1,
      resultCsv: RESULT_HEADER + "Toys,45000\n",
    }),
    expectedOn: {
      unary: { status: "RESOURCE_EXHAUSTED", message: /message larger than max/i },
      stream: { status: "RESOURCE_EXHAUSTED", message: /message larger than max/i },
    },
  },
  {
    kind: "scenario",
    name: "MAX_CONCURRENT_UPLOADS",
    why: "With MAX_CONCURRENT_UPLOADS=3 and three uploads in progress (two streams held open, " +
      "one chunked upload started), a fourth is refused on every path with a retry hint, while " +
      "downloads and health checks go on; the three then finish with correct results and a new " +
      "upload succeeds.",
    env: () => ({ MAX_CONCURRENT_UPLOADS: "3" }),
    expected: {
      status: "RESOURCE_EXHAUSTED",
      message: /^Too many uploads in progress \(the limit is 3\)/,
      trailer: ["grpc-retry-pushback-ms", "2000"],
    },
  },
  {
    kind: "scenario",
    name: "upload idle expiry",
    why: "With UPLOAD_IDLE_TIMEOUT_SEC=1 a chunked upload left idle expires: its memory is " +
      "freed, AppendUpload and FinishUpload get NOT_FOUND saying so, no result is written; an " +
      "upload appending every 100 ms meanwhile never expires and succeeds.",
    env: () => ({ UPLOAD_IDLE_TIMEOUT_SEC: "1" }),
    expected: { status: "NOT_FOUND", message: /expired after 1 s without activity$/ },
  },
];

/** What an upload actually ended with: its response and result CSV, or its error. */
export type ActualOutcome =
  | {
    response: {
      rows: number;
      badRows: number;
      departments: number;
      badRowSamples: { line: number; reason: string; raw: string }[];
    };
    resultCsv: string;
  }
  | { error: { code: number; message: string } };

/** gRPC status names by code, for messages. */
const STATUS_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** The name of a gRPC status code. */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

/** How `actual` differs from `expected`, one line each; empty when it matches. */
export function outcomeMismatches(actual: ActualOutcome, expected: Outcome): string[] {
  if (isErrorOutcome(expected)) {
    if (!("error" in actual)) {
      const { badRowSamples: _, ...counts } = actual.response;
      return [`expected ${expected.status}, but the upload succeeded: ${JSON.stringify(counts)}`];
    }
    const problems = [];
    const status = statusName(actual.error.code);
    if (status !== expected.status) problems.push(`status ${status}, expected ${expected.status}`);
    if (!expected.message.test(actual.error.message)) {
      problems.push(
        `message ${JSON.stringify(actual.error.message)} does not match ${expected.message}`,
      );
    }
    return problems;
  }
  if ("error" in actual) {
    return [`expected a result, got ${statusName(actual.error.code)}: ${actual.error.message}`];
  }
  const { response, resultCsv } = actual;
  const problems: string[] = [];
  for (const field of ["rows", "badRows", "departments"] as const) {
    if (response[field] !== expected[field]) {
      problems.push(`${field} ${response[field]}, expected ${expected[field]}`);
    }
  }
  const csvDifference = textDifference(resultCsv, expected.resultCsv);
  if (csvDifference) problems.push(`result CSV ${csvDifference}`);
  const samples = expected.badRowSamples ?? [];
  if (
    expected.badRowSamples && expected.badRows <= 20 &&
    response.badRowSamples.length !== samples.length
  ) {
    problems.push(`${response.badRowSamples.length} bad row samples, expected ${samples.length}`);
  }
  samples.forEach((sample, i) => {
    const got = response.badRowSamples[i];
    if (got === undefined) return problems.push(`bad row sample ${i} missing`);
    if (got.line !== sample.line || got.reason !== sample.reason) {
      problems.push(
        `bad row sample ${i} is line ${got.line} "${got.reason}", expected line ${sample.line} "${sample.reason}"`,
      );
    }
    const rawDifference = sample.raw === undefined ? "" : textDifference(got.raw, sample.raw);
    if (rawDifference) problems.push(`raw of bad row sample ${i} ${rawDifference}`);
  });
  return problems;
}

/** Where two long texts first differ, briefly (never megabytes); empty when equal. */
function textDifference(actual: string, expected: string): string {
  if (actual === expected) return "";
  let at = 0;
  while (at < actual.length && actual[at] === expected[at]) at++;
  const around = (text: string) => JSON.stringify(text.slice(Math.max(0, at - 40), at + 40));
  return `differs at character ${at} (lengths ${actual.length} and ${expected.length}): ` +
    `got ${around(actual)}, expected ${around(expected)}`;
}

/** The expected outcome of `testCase` on `path` at `scale`. */
export function expectedOutcome(testCase: UploadCase, path: UploadPath, scale: Scale): Outcome {
  return testCase.expectedOn?.[path] ?? testCase.expected(scale);
}
