/**
 * One upload in progress, whatever path its bytes take (unary, stream, chunked): every chunk goes
 * straight into a {@linkcode SalesInput} (gzip recognized and inflated on the fly) and its
 * aggregator, and only the result CSV ever reaches the disk. Limits that apply to every path
 * (upload size, departments, record size) belong here, in one place.
 *
 * @module
 */

import { resultCsvChunks } from "../aggregate/result_csv.ts";
import type { AggregateResult, DepartmentTotals } from "../aggregate/sales_aggregator.ts";
import { SalesInput, type SalesInputOptions } from "../aggregate/sales_input.ts";
import { AppError, Status } from "../errors.ts";
import type { LargestDepartments, ResultStore } from "../storage/result_store.ts";
import type { BadRow, UploadResponse } from "./types.ts";

/**
 * Most files one upload may hold. Each costs a few hundred bytes of state and of metadata
 * whatever its size (an empty one included), so their number needs its own bound.
 */
export const MAX_UPLOAD_FILES = 1000;

/**
 * How many of a result's largest departments its metadata keeps: as many as its page shows
 * (`EMBEDDED_DEPARTMENTS` in `browser/result_data.ts`), so a view never reads the CSV.
 */
export const KEPT_LARGEST_DEPARTMENTS = 1000;

/** Longest file name an upload may carry, in UTF-16 code units (file systems allow 255 bytes). */
export const MAX_FILENAME_LENGTH = 1024;

/**
 * Throws INVALID_ARGUMENT when a file name is longer than {@linkcode MAX_FILENAME_LENGTH}: a name
 * is kept with the upload, logged and stored beside its result, so a message-sized one would be
 * held, and written, for nothing.
 */
export function checkFilename(filename: string): void {
  if (filename.length > MAX_FILENAME_LENGTH) {
    throw new AppError(
      Status.INVALID_ARGUMENT,
      `File name too long: ${filename.length} characters, the limit is ${MAX_FILENAME_LENGTH}`,
    );
  }
}

/** Throws RESOURCE_EXHAUSTED when `count` files are more than {@linkcode MAX_UPLOAD_FILES}. */
export function checkFileCount(count: number): void {
  if (count > MAX_UPLOAD_FILES) {
    throw new AppError(
      Status.RESOURCE_EXHAUSTED,
      `Too many files in one upload: ${count}, the limit is ${MAX_UPLOAD_FILES}`,
    );
  }
}

/**
 * An upload being aggregated, of one file or several read one after another into one result;
 * {@linkcode UploadRun.finish} stores the result.
 */
export class UploadRun {
  readonly #input: SalesInput;
  /** The upload's files known so far: all of them for a chunked upload, from its start. */
  readonly #filenames: string[];
  /** The index of the file being read. */
  #fileIndex = 0;
  /**
   * The last file change or push waiting behind one, while any is pending: what comes after
   * waits for it, so bytes always reach the file they were sent for.
   */
  #queue: Promise<void> | undefined;
  /** The whole upload is timed, from its first call to the stored result. */
  readonly #startedAt = performance.now();

  /**
   * A run over the files named `filenames` (at least the first; a stream adds the others with
   * {@linkcode nextFile} as they come).
   */
  constructor(filenames: readonly string[], inputOptions?: SalesInputOptions) {
    if (filenames.length === 0) filenames = [""];
    checkFileCount(filenames.length);
    for (const name of filenames) checkFilename(name);
    this.#filenames = [...filenames];
    this.#input = new SalesInput({ ...inputOptions, filename: this.#filenames[0] });
  }

  /** The first file's name, as the client gave it; informational only. */
  get filename(): string {
    return this.#filenames[0];
  }

  /** The names of the files known so far, in upload order. */
  get filenames(): readonly string[] {
    return this.#filenames;
  }

  /** The index of the file being read. */
  get fileIndex(): number {
    return this.#fileIndex;
  }

  /** Bytes received so far, over all files (compressed bytes for gzip). */
  get bytes(): number {
    return this.#input.receivedBytes;
  }

  /** Rows (good and bad) aggregated so far. */
  get rows(): number {
    return this.#input.rows;
  }

  /** Bad rows so far. */
  get badRows(): number {
    return this.#input.badRows;
  }

  /** True once the input was refused (too large, corrupt, too many departments): a retry cannot help. */
  get inputFailed(): boolean {
    return this.#input.failed;
  }

  /**
   * Aggregates the next bytes of the current file. They are taken before it returns (unless a
   * file change is still pending: then they are held, untouched, until it ends), so `chunk` may
   * be reused at once and the upload's offset may move on; the promise resolves when the run is
   * ready for more (gzip is inflated on another thread) and rejects when the input is refused.
   */
  push(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return this.#queue ?? Promise.resolve();
    if (this.#queue === undefined) return this.#input.push(chunk);
    return this.#enqueue(() => this.#input.push(chunk));
  }

  /**
   * Ends the current file and starts a new one named `name`, after the known ones (a stream's
   * next file). Rejects when the file ended is refused (corrupt gzip), or when there would be
   * more than {@linkcode MAX_UPLOAD_FILES}.
   */
  nextFile(name: string): Promise<void> {
    try {
      checkFilename(name);
      checkFileCount(this.#filenames.length + 1);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#filenames.push(name);
    return this.moveToFile(this.#filenames.length - 1);
  }

  /**
   * Ends the current file and every known file before `index` (left empty), and starts file
   * `index` (a chunked upload's `file_index`). Pushes made after this call go to that file.
   */
  moveToFile(index: number): Promise<void> {
    if (index <= this.#fileIndex) return this.#queue ?? Promise.resolve();
    const names = this.#filenames.slice(this.#fileIndex + 1, index + 1);
    this.#fileIndex = index;
    return this.#enqueue(async () => {
      for (const name of names) await this.#input.nextFile(name);
    });
  }

  /** Releases what an upload dropped before {@linkcode UploadRun.finish} holds; idempotent. */
  close(): void {
    this.#input.close();
  }

  /**
   * Ends the input (known files not reached yet are empty), writes the result CSV with its
   * metadata (file names, counts) and describes it, with `downloadUrlOf(resultId)` and
   * `pagePathOf(resultId)`.
   */
  async finish(
    store: ResultStore,
    downloadUrlOf: (resultId: string) => string,
    pagePathOf: (resultId: string) => string,
  ): Promise<UploadResponse> {
    await this.moveToFile(this.#filenames.length - 1);
    const result = await this.#input.finish();
    const files = result.files.map(({ name, rows, badRows, departments }) => ({
      name,
      rows,
      badRows,
      departments,
    }));
    const badRowSamples = samplesOf(result);
    const resultId = await store.saveChunks(resultCsvChunks(result.departmentTotals), {
      filename: this.filename,
      rows: result.rows,
      badRows: result.badRows,
      departments: result.departments,
      badRowSamples,
      files,
      largest: largestDepartmentsOf(result.departmentTotals),
    });
    return {
      resultId,
      downloadUrl: downloadUrlOf(resultId),
      rows: result.rows,
      badRows: result.badRows,
      departments: result.departments,
      elapsedSec: (performance.now() - this.#startedAt) / 1000,
      badRowSamples,
      files,
      pagePath: pagePathOf(resultId),
    };
  }

  /** Runs `step` after what is queued; the queue empties itself once its last step has run. */
  #enqueue(step: () => Promise<void>): Promise<void> {
    const previous = this.#queue ?? Promise.resolve();
    const queued: Promise<void> = previous.then(step);
    this.#queue = queued;
    const settle = () => {
      if (this.#queue === queued) this.#queue = undefined;
    };
    // Whoever queued a step awaits it; this branch only tidies up, and must not raise its own.
    queued.then(settle, settle);
    return queued;
  }
}

/**
 * The bad-row samples with their file's index. The samples are the first bad rows in upload
 * order, so sample `i` lies in the first file whose bad rows, added to those of the files before
 * it, pass `i`: exact even when two files share a name.
 */
function samplesOf(result: AggregateResult): BadRow[] {
  const samples: BadRow[] = [];
  let fileIndex = 0;
  let badRowsBefore = 0;
  for (const { line, reason, raw } of result.badRowSamples) {
    while (
      fileIndex < result.files.length - 1 &&
      samples.length >= badRowsBefore + result.files[fileIndex].badRows
    ) {
      badRowsBefore += result.files[fileIndex].badRows;
      fileIndex++;
    }
    samples.push({ line, reason, raw, file: result.files[fileIndex]?.name ?? "", fileIndex });
  }
  return samples;
}

/** Below this a running sum of totals stays exact in a double, whatever total of 15 digits is added. */
const EXACT_SUM_LIMIT = Number.MAX_SAFE_INTEGER - 1e15;
const decoder = new TextDecoder();

/**
 * The `limit` largest departments of `totals`, largest first, equal totals in output (CSV) order
 * as a stable sort of the CSV would give, and the sum of every total: one pass, a heap of `limit`
 * entries, names decoded only for those kept.
 */
export function largestDepartmentsOf(
  totals: DepartmentTotals,
  limit: number = KEPT_LARGEST_DEPARTMENTS,
): LargestDepartments {
  // A min-heap of output indices, its root the smallest total kept (the latest of equal ones).
  const heap: number[] = [];
  const texts: string[] = [];
  let sum = 0n;
  let partial = 0;
  for (let index = 0; index < totals.size; index++) {
    const text = totals.totalText(index);
    // Totals of up to 15 digits add up exactly as doubles: BigInt only every so often.
    if (text.length <= 15) {
      partial += Number(text);
      if (partial >= EXACT_SUM_LIMIT) {
        sum += BigInt(partial);
        partial = 0;
      }
    } else {
      sum += BigInt(text);
    }
    if (limit <= 0) continue;
    if (heap.length < limit) {
      heap.push(index);
      texts.push(text);
      siftUp(heap, texts, heap.length - 1);
    } else if (compareTotals(text, texts[0]) > 0) {
      // Equal to the root is not enough: an equal total later in the CSV ranks after it.
      heap[0] = index;
      texts[0] = text;
      siftDown(heap, texts, 0);
    }
  }
  sum += BigInt(partial);
  const order = heap.map((index, at) => ({ index, text: texts[at] }))
    .sort((a, b) => compareTotals(b.text, a.text) || a.index - b.index);
  return {
    departments: order.map(({ index, text }) => [decoder.decode(totals.nameBytes(index)), text]),
    totalSales: String(sum),
  };
}

/** Decimal totals without leading zeros compared: the longer is larger, else as text. */
function compareTotals(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** Whether heap entry `a` ranks below `b`: a smaller total, or an equal one later in the CSV. */
function ranksBelow(heap: number[], texts: string[], a: number, b: number): boolean {
  const order = compareTotals(texts[a], texts[b]);
  return order < 0 || (order === 0 && heap[a] > heap[b]);
}

function swap(heap: number[], texts: string[], a: number, b: number): void {
  [heap[a], heap[b]] = [heap[b], heap[a]];
  [texts[a], texts[b]] = [texts[b], texts[a]];
}

function siftUp(heap: number[], texts: string[], at: number): void {
  while (at > 0) {
    const parent = (at - 1) >> 1;
    if (!ranksBelow(heap, texts, at, parent)) return;
    swap(heap, texts, at, parent);
    at = parent;
  }
}

function siftDown(heap: number[], texts: string[], at: number): void {
  for (;;) {
    const left = 2 * at + 1, right = left + 1;
    let lowest = at;
    if (left < heap.length && ranksBelow(heap, texts, left, lowest)) lowest = left;
    if (right < heap.length && ranksBelow(heap, texts, right, lowest)) lowest = right;
    if (lowest === at) return;
    swap(heap, texts, at, lowest);
    at = lowest;
  }
}
