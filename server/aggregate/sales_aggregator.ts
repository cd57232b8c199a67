/**
 * Streaming sales aggregation: CSV bytes in (`Department Name,Date,Number of Sales`), exact totals per
 * department out, in one pass and constant memory.
 *
 * Feed chunks of any size with {@linkcode SalesAggregator.push} (from a file, a gRPC stream or a
 * chunked upload spread over many calls), then call {@linkcode SalesAggregator.finish}.
 *
 * @example
 * ```ts
 * import { SalesAggregator } from "./sales_aggregator.ts";
 *
 * const aggregator = new SalesAggregator();
 * aggregator.push(new TextEncoder().encode("Department Name,Date,Number of Sales\nToys,2024-01-02,3\n"));
 * aggregator.push(new TextEncoder().encode("Toys,2024-01-03,4\n"));
 * const result = aggregator.finish();
 * if (result.totals.get("Toys") !== 7n) throw new Error("wrong total");
 * ```
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";
import { concatBytes } from "./_bytes.ts";
import {
  DepartmentTable,
  DepartmentTotals,
  EMPTY_DEPARTMENT,
  FNV_OFFSET,
  FNV_PRIME,
  hashBytes,
  mergePackedTotals,
  NOT_CACHED,
  type PackedTotals,
} from "./_department_table.ts";
import {
  FIELD_START,
  firstCharacters,
  IN_FIELD,
  IN_QUOTED,
  INVALID_SALES,
  isDateField,
  QUOTE_IN_QUOTED,
  RecordSplitter,
  salesField,
} from "./_record.ts";

export type { DepartmentTotals, PackedTotals } from "./_department_table.ts";

/** One bad row: where it starts, why it is bad, and how it begins. */
export interface BadRowSample {
  /** 1-based line where the record starts; the header, when present, is line 1. */
  line: number;
  /** A short reason, such as `invalid date`. */
  reason: string;
  /** The record's first 200 characters. */
  raw: string;
  /** The file the record is in, as named to the aggregator (`""` when unnamed). */
  file: string;
  /** The 0-based position of that file among the input's files (two may share a name). */
  fileIndex: number;
}

/** What one input file contributed to an aggregation. */
export interface FileResult {
  /** The file's name as given (`""` when unnamed). */
  name: string;
  /** Rows read from this file, good and bad. */
  rows: number;
  /** Bad rows in this file. */
  badRows: number;
  /** Distinct departments with at least one good row in this file. */
  departments: number;
}

/** What an aggregation produced. */
export interface AggregateResult {
  /**
   * Exact total per department, in output order (by code point). Built on first use: for
   * millions of departments, read {@linkcode AggregateResult.departmentTotals} instead.
   */
  readonly totals: Map<string, bigint>;
  /** The same totals without a string or BigInt per department, for writing the result CSV. */
  readonly departmentTotals: DepartmentTotals;
  /** Rows read, good and bad (not the header, not empty lines). */
  rows: number;
  /** Rows skipped as bad. */
  badRows: number;
  /** Distinct departments. */
  departments: number;
  /** Seconds from the aggregator's creation to `finish()`. */
  elapsedSec: number;
  /** Input bytes consumed. */
  bytes: number;
  /**
   * Bad rows in upload order, at most `maxBadRowSamples`: the first ones, with each file's first
   * bad rows kept as room allows (see {@linkcode keepBadRowSample}); lines count from 1 in each file.
   */
  badRowSamples: BadRowSample[];
  /** Each input file in the order read: one entry for a single file. */
  files: FileResult[];
}

/** Options for {@linkcode SalesAggregator}. */
export interface SalesAggregatorOptions {
  /**
   * A record longer than this many bytes (without its line terminator) is one bad row.
   * @default {1048576}
   */
  maxRecordBytes?: number;
  /**
   * Distinct departments allowed; one more throws `AppError(RESOURCE_EXHAUSTED)`.
   * @default {Infinity}
   */
  maxDepartments?: number;
  /**
   * How many bad rows to keep as samples.
   * @default {20}
   */
  maxBadRowSamples?: number;
  /**
   * The bytes start in the middle of a file, at a line break (another thread reads what comes
   * before): no BOM is stripped, no header is recognized, and lines count from 1 at the start.
   * @default {false}
   */
  midFile?: boolean;
  /**
   * The name of the (first) input file, given back in {@linkcode FileResult.name} and
   * {@linkcode BadRowSample.file}.
   * @default {""}
   */
  filename?: string;
}

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Bytes kept from the start of an over-long record, enough for 200 characters of any width. */
const RAW_SAMPLE_BYTES = 800;
const RAW_SAMPLE_CHARS = 200;
const HEADER = ["department name", "date", "number of sales"];

const lossyUtf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/** Aggregates sales CSV bytes pushed in chunks of any size. */
export class SalesAggregator {
  readonly #maxRecordBytes: number;
  readonly #maxSamples: number;
  /** A file whose first bad row found no room among the samples: its others will not either. */
  #noRoomFor = -1;
  readonly #table: DepartmentTable;
  readonly #splitter = new RecordSplitter();
  readonly #started = performance.now();
  readonly #samples: BadRowSample[] = [];
  #rows = 0;
  #badRows = 0;
  #bytes = 0;
  /** Line where the next record starts. */
  #line = 1;
  #headerPending = true;
  /** Bytes held at the very start while deciding whether they are a BOM. */
  #head: Uint8Array | undefined = new Uint8Array(0);
  // A record cut by a chunk boundary: its bytes so far and the scanner's state at the cut.
  #partial = new Uint8Array(0);
  #partialLength = 0;
  #inRecord = false;
  #scanState = FIELD_START;
  #scanLineFeeds = 0;
  /** Skipping the rest of an over-long record, up to and including the next LF. */
  #discarding = false;
  #result: AggregateResult | undefined;
  /** What made a call throw: the state may be half-updated, so every later call is refused. */
  #failure: unknown;
  #writable: WritableStream<Uint8Array> | undefined;
  // The current input file, and the counts when it started.
  #fileName: string;
  #fileStartRows = 0;
  #fileStartBadRows = 0;
  readonly #files: FileResult[] = [];

  /** Creates an aggregator; `elapsedSec` counts from here. */
  constructor(options: SalesAggregatorOptions = {}) {
    this.#fileName = options.filename ?? "";
    this.#maxRecordBytes = options.maxRecordBytes ?? 1_048_576;
    this.#maxSamples = options.maxBadRowSamples ?? 20;
    this.#table = new DepartmentTable(options.maxDepartments ?? Infinity);
    if (options.midFile) {
      this.#headerPending = false;
      this.#head = undefined;
    }
  }

  /** Rows read so far, good and bad. */
  get rows(): number {
    return this.#rows;
  }

  /** Bad rows so far. */
  get badRows(): number {
    return this.#badRows;
  }

  /** Bytes pushed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** LF bytes consumed so far (line numbers are 1 + the LFs before a record). */
  get lineFeeds(): number {
    return this.#line - 1;
  }

  /**
   * True when the bytes pushed so far end exactly between two records: no record, BOM or skipped
   * over-long record is cut, so what follows parses as it would from a fresh start mid-file.
   */
  get atRecordBoundary(): boolean {
    return !this.#inRecord && !this.#discarding && this.#head === undefined;
  }

  /**
   * A sink for the bytes, for stream pipes: each chunk is {@linkcode push}ed, and closing the
   * stream calls {@linkcode finish}, which then returns the result.
   *
   * @example
   * ```ts
   * import { gzipSync } from "node:zlib";
   * import { SalesAggregator } from "./sales_aggregator.ts";
   *
   * const path = await Deno.makeTempFile({ suffix: ".csv.gz" });
   * await Deno.writeFile(path, gzipSync(new TextEncoder().encode("Toys,2024-01-02,3\n")));
   * const aggregator = new SalesAggregator();
   * using file = await Deno.open(path);
   * await file.readable.pipeThrough(new DecompressionStream("gzip")).pipeTo(aggregator.writable);
   * if (aggregator.finish().totals.get("Toys") !== 3n) throw new Error("wrong total");
   * await Deno.remove(path);
   * ```
   */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream({
      write: (chunk) => this.push(chunk),
      close: () => {
        this.finish();
      },
    });
  }

  /** Aggregates the next chunk. The chunk is not kept, so the caller may reuse its buffer. */
  push(chunk: Uint8Array): void {
    this.#refuseIfFailed("push");
    if (this.#result) throw new Error("SalesAggregator.push() called after finish()");
    try {
      this.#push(chunk);
    } catch (error) {
      this.#failure = error;
      throw error;
    }
  }

  #push(chunk: Uint8Array): void {
    // A subclass such as Node's Buffer overrides indexOf and friends with slow versions, and a
    // second array type would make the hot path polymorphic: work on a plain view of the bytes.
    if (chunk.constructor !== Uint8Array) {
      chunk = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    this.#bytes += chunk.length;
    if (this.#head) {
      const rest = this.#skipBom(chunk, false);
      if (!rest) return;
      chunk = rest;
    }
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.#discarding) pos = this.#discard(chunk, pos);
      else if (this.#inRecord) pos = this.#continueRecord(chunk, pos);
      else pos = this.#scan(chunk, pos);
    }
  }

  /**
   * Adds department totals aggregated elsewhere (another thread's part of the same file, see
   * {@linkcode DepartmentTotals.pack}) to this aggregator's, before {@linkcode finish}.
   */
  addTotals(packed: PackedTotals): void {
    this.#refuseIfFailed("addTotals");
    if (this.#result) throw new Error("SalesAggregator.addTotals() called after finish()");
    try {
      mergePackedTotals(this.#table, packed);
    } catch (error) {
      this.#failure = error;
      throw error;
    }
  }

  /**
   * Ends the current input file and starts the next one, named `name`: a record never spans two
   * files (the unfinished last record of this one is its bad row), and the next file has its own
   * BOM, optional header and line numbers.
   */
  nextFile(name: string): void {
    this.#refuseIfFailed("nextFile");
    if (this.#result) throw new Error("SalesAggregator.nextFile() called after finish()");
    try {
      this.#endFile();
    } catch (error) {
      this.#failure = error;
      throw error;
    }
    this.#fileName = name;
    this.#fileStartRows = this.#rows;
    this.#fileStartBadRows = this.#badRows;
    this.#line = 1;
    this.#headerPending = true;
    this.#head = new Uint8Array(0);
    this.#table.startFile();
  }

  /** Ends the input and returns the result; later calls return the same result. */
  finish(): AggregateResult {
    if (this.#result) return this.#result;
    this.#refuseIfFailed("finish");
    try {
      this.#endFile();
    } catch (error) {
      this.#failure = error;
      throw error;
    }
    this.#result = aggregateResult({
      rows: this.#rows,
      badRows: this.#badRows,
      elapsedSec: (performance.now() - this.#started) / 1000,
      bytes: this.#bytes,
      badRowSamples: this.#samples,
      files: this.#files,
    }, new DepartmentTotals(this.#table));
    // The lookup structures are not needed any more: their memory goes before the output's.
    this.#table.seal();
    return this.#result;
  }

  /** Takes the current file's held BOM bytes and last unfinished record, and records its counts. */
  #endFile(): void {
    if (this.#head) {
      const rest = this.#skipBom(new Uint8Array(0), true);
      if (rest && rest.length > 0) this.#push(rest);
      this.#bytes -= rest?.length ?? 0; // #push() counted them again
    }
    if (this.#inRecord) {
      this.#inRecord = false;
      this.#evaluate(this.#partial.subarray(0, this.#partialLength), this.#line, false);
      this.#partial = new Uint8Array(0);
    }
    this.#discarding = false;
    this.#files.push({
      name: this.#fileName,
      rows: this.#rows - this.#fileStartRows,
      badRows: this.#badRows - this.#fileStartBadRows,
      departments: this.#table.fileDepartments,
    });
  }

  /** Throws FAILED_PRECONDITION when an earlier call failed part-way. */
  #refuseIfFailed(method: string): void {
    if (this.#failure === undefined) return;
    const failure = this.#failure;
    const reason = failure instanceof Error ? failure.message : String(failure);
    throw new AppError(
      Status.FAILED_PRECONDITION,
      `Cannot call SalesAggregator.${method}(): an earlier call failed (${reason})`,
      { cause: failure },
    );
  }

  /** Strips a leading UTF-8 BOM, holding up to 3 bytes until it can tell; undefined while holding. */
  #skipBom(chunk: Uint8Array, atEnd: boolean): Uint8Array | undefined {
    const head = this.#head!;
    const bytes = head.length === 0 ? chunk : concatBytes(head, chunk);
    const isBomPrefix = bytes.length < 3 &&
      [0xef, 0xbb, 0xbf].every((b, i) => i >= bytes.length || bytes[i] === b);
    if (isBomPrefix && !atEnd) {
      this.#head = bytes.slice();
      return undefined;
    }
    this.#head = undefined;
    const hasBom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
    return hasBom ? bytes.subarray(3) : bytes;
  }

  /** Aggregates records starting at `pos` until the chunk ends or a record is cut or over-long. */
  #scan(buf: Uint8Array, pos: number): number {
    const end = buf.length;
    const lastLineFeed = buf.lastIndexOf(LF);
    while (pos < end) {
      if (!this.#headerPending && pos <= lastLineFeed) {
        pos = this.#fastRows(buf, pos, lastLineFeed);
        if (pos > lastLineFeed) continue;
      }
      pos = this.#generalRecord(buf, pos);
      if (this.#inRecord || this.#discarding) return pos;
    }
    return pos;
  }

  /**
   * The hot path: rows of the usual shape (`name,YYYY-MM-DD,digits` + LF or CRLF, the name plain or
   * simply quoted), up to and including the chunk's last LF. Returns where it stopped: the start of
   * the first record it cannot take, which the general path then handles. Word reads stay before
   * `lastLineFeed` (or, for the sales digits, inside the chunk) and byte loops stop at an LF, so
   * no read leaves the chunk. Fewer branches per row matter most here: the last bytes of the name
   * and up to 4 sales digits are taken from one word each instead of a loop of unpredictable length.
   */
  #fastRows(buf: Uint8Array, pos: number, lastLineFeed: number): number {
    const table = this.#table;
    const maxRecordBytes = this.#maxRecordBytes;
    // Word reads (4 bytes at once); DataView loads compile to plain loads.
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const bufLength = buf.length;
    let rows = 0;
    let lines = 0;
    while (pos <= lastLineFeed) {
      const start = pos;
      let b = buf[pos];
      if (b === LF) {
        pos++;
        lines++;
        continue;
      }
      // The name ends at a comma, or at a quote when quoted; either way an LF ends the attempt.
      const quoted = b === QUOTE;
      const delimiter = quoted ? QUOTE : COMMA;
      const delimiterWord = quoted ? 0x22222222 : 0x2c2c2c2c;
      const nameStart = quoted ? pos + 1 : pos;
      let i = nameStart;
      let hash = FNV_OFFSET;
      // Whole words without the delimiter or an LF (a zero-byte test on word ^ pattern); the word
      // holding the delimiter gives the last 0-3 bytes of the name without a loop. The name is
      // hashed as hashBytes() does: each whole word, then the packed tail.
      let word = 0;
      let stops = 0;
      while (i + 4 <= lastLineFeed) {
        word = view.getInt32(i, true);
        const x = word ^ delimiterWord;
        const y = word ^ 0x0a0a0a0a;
        stops = (((x - 0x01010101) & ~x) | ((y - 0x01010101) & ~y)) & 0x80808080;
        if (stops !== 0) break;
        hash = Math.imul(hash ^ word, FNV_PRIME);
        i += 4;
      }
      // Too close to the chunk's last LF for word reads: the general path takes the record.
      if (stops === 0) break;
      // The lowest flagged byte is exact: the first delimiter or LF.
      i += (31 - Math.clz32(stops & -stops)) >> 3;
      if (buf[i] !== delimiter) break;
      const tail = word & ((1 << (((i - nameStart) & 3) << 3)) - 1);
      hash = Math.imul(hash ^ tail, FNV_PRIME);
      const nameEnd = i;
      if (quoted) {
        // `""` inside the quotes or text after the closing quote: the general path decides.
        if (buf[++i] !== COMMA) break;
      }
      i++;
      // The date, `YYYY-MM-DD,` and the first sales digit, as three words; a valid row still has
      // its LF after them, so reading them cannot pass the chunk's last LF.
      if (i + 12 > lastLineFeed) break;
      const years = view.getUint32(i, true);
      const months = view.getUint32(i + 4, true);
      const days = view.getUint32(i + 8, true);
      // A byte is a digit when its high nibble is 3, and still 3 after adding 6.
      if (
        (years & 0xf0f0f0f0) !== 0x30303030 ||
        ((years + 0x06060606) & 0xf0f0f0f0) !== 0x30303030 ||
        (months & 0xfff0f0ff) !== 0x2d30302d ||
        ((months + 0x00060600) & 0x00f0f000) !== 0x00303000 ||
        (days & 0x00fff0f0) !== 0x002c3030 ||
        ((days + 0x00000606) & 0x0000f0f0) !== 0x00003030
      ) {
        break;
      }
      const year = (years & 0xf) * 1000 + ((years >>> 8) & 0xf) * 100 +
        ((years >>> 16) & 0xf) * 10 + ((years >>> 24) & 0xf);
      const month = ((months >>> 8) & 0xf) * 10 + ((months >>> 16) & 0xf);
      const day = (days & 0xf) * 10 + ((days >>> 8) & 0xf);
      if (
        year === 0 || month === 0 || month > 12 || day === 0 ||
        day > 28 && !isLongEnough(year, month, day)
      ) {
        break;
      }
      i += 11;
      let sales: number;
      if (i + 4 <= bufLength) {
        // Up to 4 digits at once: flag the non-digit bytes, count the digits before the first.
        const word = view.getInt32(i, true);
        const misses = ((word & 0xf0f0f0f0) ^ 0x30303030) |
          (((word + 0x06060606) & 0xf0f0f0f0) ^ 0x30303030);
        const flags = (((misses & 0x7f7f7f7f) + 0x7f7f7f7f) | misses) & 0x80808080;
        const count = flags === 0 ? 4 : (31 - Math.clz32(flags & -flags)) >> 3;
        if (count === 0) break;
        // Digits to the top bytes (leading zeros below), then pairs, then the 4-digit value.
        const digits = (word & 0x0f0f0f0f) << ((4 - count) << 3);
        const pairs = (Math.imul(digits, 10) + (digits >>> 8)) & 0x00ff00ff;
        sales = (pairs & 0xff) * 100 + (pairs >>> 16);
        i += count;
        b = buf[i];
        if (count === 4) {
          let digit: number;
          while ((digit = b - 48) >>> 0 <= 9) {
            sales = sales * 10 + digit;
            b = buf[++i];
          }
        }
      } else {
        let digit = buf[i] - 48;
        if (digit >>> 0 > 9) break;
        sales = digit;
        b = buf[++i];
        // `>>> 0` turns non-digits (negative after - 48) into large values.
        while ((digit = b - 48) >>> 0 <= 9) {
          sales = sales * 10 + digit;
          b = buf[++i];
        }
      }
      const contentEnd = i;
      if (b === CR) b = buf[++i];
      if (b !== LF) break;
      // Doubles stay exact to 2^53 and only grow, so anything past MAX_SAFE compares above it.
      if (sales > MAX_SAFE || contentEnd - start > maxRecordBytes) break;
      // Small enough to be inlined: measured as fast as the probe it replaced, written out here.
      let department = table.lookup(view, nameStart, nameEnd - nameStart, hash, tail);
      // First sight of this spelling: the table decodes it (a department or a bad name).
      if (department === NOT_CACHED) department = table.find(buf, nameStart, nameEnd, hash);
      if (department < 0) break;
      table.add(department, sales);
      rows++;
      lines++;
      pos = i + 1;
    }
    this.#rows += rows;
    this.#line += lines;
    return pos;
  }

  /**
   * One record at `start` by the general path: finds its end, respecting quotes; evaluates it when
   * complete, keeps it as partial when the chunk ends first, or starts discarding when it is too long.
   */
  #generalRecord(buf: Uint8Array, start: number): number {
    const budget = this.#maxRecordBytes + 2; // room for a CR before the LF
    const stop = Math.min(buf.length, start + budget);
    this.#scanState = FIELD_START;
    this.#scanLineFeeds = 0;
    const lineFeed = this.#findRecordEnd(buf, start, stop);
    if (lineFeed >= 0) {
      const line = this.#line;
      this.#line += this.#scanLineFeeds + 1;
      this.#evaluate(buf.subarray(start, lineFeed), line, true);
      return lineFeed + 1;
    }
    if (stop - start === budget) {
      this.#startDiscarding(buf.subarray(start, Math.min(stop, start + RAW_SAMPLE_BYTES)));
      return stop;
    }
    this.#partialLength = 0;
    this.#appendPartial(buf, start, stop);
    this.#inRecord = true;
    return stop;
  }

  /** Continues a record cut by the previous chunk. */
  #continueRecord(buf: Uint8Array, pos: number): number {
    const budget = this.#maxRecordBytes + 2 - this.#partialLength;
    const stop = Math.min(buf.length, pos + budget);
    const lineFeed = this.#findRecordEnd(buf, pos, stop);
    if (lineFeed >= 0) {
      this.#appendPartial(buf, pos, lineFeed);
      this.#inRecord = false;
      const line = this.#line;
      this.#line += this.#scanLineFeeds + 1;
      this.#evaluate(this.#partial.subarray(0, this.#partialLength), line, true);
      this.#releasePartial();
      return lineFeed + 1;
    }
    if (stop - pos === budget) {
      this.#inRecord = false;
      // The sample needs the record's first bytes, some of which may be in this chunk.
      const sampleEnd = Math.min(stop, pos + Math.max(0, RAW_SAMPLE_BYTES - this.#partialLength));
      this.#appendPartial(buf, pos, sampleEnd);
      this.#startDiscarding(
        this.#partial.subarray(0, Math.min(this.#partialLength, RAW_SAMPLE_BYTES)),
      );
      this.#releasePartial();
      return stop;
    }
    this.#appendPartial(buf, pos, stop);
    return stop;
  }

  /**
   * Scans `buf[from, stop)` for the LF that ends the current record, carrying the quote state in
   * `#scanState` and counting LFs inside quotes. Returns the LF's index, or -1.
   */
  #findRecordEnd(buf: Uint8Array, from: number, stop: number): number {
    let state = this.#scanState;
    let lineFeeds = this.#scanLineFeeds;
    let found = -1;
    for (let i = from; i < stop; i++) {
      const b = buf[i];
      if (state === IN_QUOTED) {
        if (b === QUOTE) state = QUOTE_IN_QUOTED;
        else if (b === LF) lineFeeds++;
      } else if (b === LF) {
        found = i;
        break;
      } else if (b === COMMA) {
        state = FIELD_START;
      } else if (b === QUOTE) {
        // A quote opens quoting only at the start of a field; after a closing quote it is `""`.
        state = state === FIELD_START || state === QUOTE_IN_QUOTED ? IN_QUOTED : IN_FIELD;
      } else {
        state = IN_FIELD;
      }
    }
    this.#scanState = state;
    this.#scanLineFeeds = lineFeeds;
    return found;
  }

  /** Counts an over-long record as bad and skips to the next LF. */
  #startDiscarding(rawStart: Uint8Array): void {
    // With a tiny limit the sample is the whole budget, whose last byte may be the CR of a CRLF.
    if (rawStart.length === this.#maxRecordBytes + 2 && rawStart[rawStart.length - 1] === CR) {
      rawStart = rawStart.subarray(0, rawStart.length - 1);
    }
    const line = this.#line;
    this.#line += this.#scanLineFeeds;
    this.#headerPending = false;
    this.#bad(line, `record exceeds ${this.#maxRecordBytes} bytes`, rawStart);
    this.#discarding = true;
  }

  #discard(buf: Uint8Array, pos: number): number {
    const lineFeed = buf.indexOf(LF, pos);
    if (lineFeed < 0) return buf.length;
    this.#discarding = false;
    this.#line++;
    return lineFeed + 1;
  }

  #appendPartial(buf: Uint8Array, from: number, to: number): void {
    const needed = this.#partialLength + (to - from);
    if (needed > this.#partial.length) {
      const grown = new Uint8Array(
        Math.max(needed, Math.min(this.#partial.length * 2 || 4096, this.#maxRecordBytes + 2)),
      );
      grown.set(this.#partial.subarray(0, this.#partialLength));
      this.#partial = grown;
    }
    this.#partial.set(buf.subarray(from, to), this.#partialLength);
    this.#partialLength = needed;
  }

  #releasePartial(): void {
    this.#partialLength = 0;
    // A big buffer left by one long record is not kept for the rest of the file.
    if (this.#partial.length > 65536) this.#partial = new Uint8Array(0);
  }

  /** Evaluates one complete record (without its LF) by the general rules. */
  #evaluate(record: Uint8Array, line: number, endedByLineFeed: boolean): void {
    let length = record.length;
    if (endedByLineFeed && length > 0 && record[length - 1] === CR) length--;
    if (length === 0) return; // an empty line
    const splitter = this.#splitter;
    splitter.split(record, length);
    const tooLong = length > this.#maxRecordBytes;
    if (this.#headerPending) {
      this.#headerPending = false;
      if (
        !tooLong && !splitter.textAfterQuote && !splitter.unterminatedQuote && isHeader(splitter)
      ) {
        return;
      }
    }
    const reason = tooLong
      ? `record exceeds ${this.#maxRecordBytes} bytes`
      : splitter.textAfterQuote
      ? "text after closing quote"
      : splitter.unterminatedQuote
      ? "unterminated quoted field"
      : this.#addRow(splitter);
    if (reason) this.#bad(line, reason, record.subarray(0, Math.min(length, RAW_SAMPLE_BYTES)));
  }

  /** Adds a row split into fields, or returns why it is bad. */
  #addRow(splitter: RecordSplitter): string | undefined {
    if (splitter.count !== 3) return `expected 3 fields, found ${splitter.count}`;
    const { value, starts, ends } = splitter;
    if (!isDateField(value, starts[1], ends[1])) return "invalid date";
    const sales = salesField(value, starts[2], ends[2]);
    if (sales < 0) {
      return sales === INVALID_SALES
        ? "invalid number of sales"
        : "number of sales exceeds 9007199254740991";
    }
    const department = this.#table.find(
      value,
      starts[0],
      ends[0],
      hashBytes(value, starts[0], ends[0]),
    );
    if (department < 0) {
      return department === EMPTY_DEPARTMENT ? "empty department" : "department is not valid UTF-8";
    }
    this.#table.add(department, sales);
    this.#rows++;
    return undefined;
  }

  #bad(line: number, reason: string, rawStart: Uint8Array): void {
    this.#rows++;
    this.#badRows++;
    const fileIndex = this.#files.length;
    // Most bad rows past the first samples are left out: decide before decoding the row.
    const full = this.#samples.length >= this.#maxSamples;
    if (full && (this.#samples.at(-1)?.fileIndex === fileIndex || this.#noRoomFor === fileIndex)) {
      return;
    }
    const kept = keepBadRowSample(this.#samples, {
      line,
      reason,
      raw: firstCharacters(lossyUtf8.decode(rawStart), RAW_SAMPLE_CHARS),
      file: this.#fileName,
      fileIndex,
    }, this.#maxSamples);
    if (!kept) this.#noRoomFor = fileIndex;
  }
}

/**
 * Keeps `sample`, the next bad row in upload order, in `samples` (at most `max`, in upload order)
 * so that every file with bad rows shows some while room lasts: until `samples` is full every bad
 * row is kept; after that, a file's first bad row takes the place of the last sample of the file
 * holding the most (the later such file on a tie, and only one holding two or more), and any other
 * bad row is left out. Whether the rows come one by one or as each file's first `max`, the samples
 * kept are the same. Returns whether `sample` was kept.
 */
export function keepBadRowSample(
  samples: BadRowSample[],
  sample: BadRowSample,
  max: number,
): boolean {
  if (samples.length < max) {
    samples.push(sample);
    return true;
  }
  // Samples are in upload order, so a file that has some has its last one at the end.
  if (max === 0 || samples.at(-1)!.fileIndex === sample.fileIndex) return false;
  let most = 1;
  let evict = -1;
  for (let i = 0, run = 0; i < samples.length; i++) {
    run = i > 0 && samples[i - 1].fileIndex === samples[i].fileIndex ? run + 1 : 1;
    const endsFile = i === samples.length - 1 || samples[i + 1].fileIndex !== samples[i].fileIndex;
    if (endsFile && run >= 2 && run >= most) {
      most = run;
      evict = i;
    }
  }
  if (evict < 0) return false;
  samples.splice(evict, 1);
  samples.push(sample);
  return true;
}

/**
 * An {@linkcode AggregateResult} from its counts and totals; `totals` is built on first read, so
 * that writing the result CSV of a million departments never holds a million strings.
 */
export function aggregateResult(
  counts: Omit<AggregateResult, "totals" | "departmentTotals" | "departments">,
  departmentTotals: DepartmentTotals,
): AggregateResult {
  let totals: Map<string, bigint> | undefined;
  const result = { ...counts, departments: departmentTotals.size } as AggregateResult;
  Object.defineProperty(result, "totals", {
    enumerable: true,
    get: () => totals ??= new Map(departmentTotals.entries()),
  });
  // Not enumerable: results compared field by field compare the totals through `totals`.
  Object.defineProperty(result, "departmentTotals", { value: departmentTotals });
  return result;
}

/** Day 29-31 check for the hot path (days 1-28 exist in every month). */
function isLongEnough(year: number, month: number, day: number): boolean {
  if (day > 31) return false;
  if (month === 2) return day === 29 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= 30 || (month !== 4 && month !== 6 && month !== 9 && month !== 11);
}

function isHeader(splitter: RecordSplitter): boolean {
  return splitter.count === 3 &&
    HEADER.every((name, i) => splitter.text(i).toLowerCase() === name);
}
