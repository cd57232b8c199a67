/**
 * Aggregates a plain CSV file on several threads: the file is cut into ranges at line breaks, one
 * range per thread, and the parts merged exactly. The result is the one
 * {@linkcode aggregateFile} gives, bad-row samples and their line numbers included.
 *
 * A line break may sit inside a quoted field, and only the bytes before it can tell. So each
 * thread speculates that its range starts a record; when the thread before it ends its own range,
 * it checks the guess: it must end exactly between two records. If it does not, the guess was
 * wrong, the speculative part is dropped, and the thread before carries on into that range
 * itself (correct, only slower, and only for files whose quoted fields hold line breaks at
 * the cut).
 *
 * @example
 * ```ts
 * import { aggregateFileParallel } from "./parallel_aggregate.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "Toys,2024-01-02,3\n\"Toys\n\",2024-01-02,4\nToys,2024-01-03,4\n");
 * const result = await aggregateFileParallel(path, { threads: 2, minBytesPerThread: 1 });
 * if (result.totals.get("Toys") !== 7n) throw new Error("wrong total");
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

import { AppError, type Status } from "../errors.ts";
import type { PackedTotals } from "./_department_table.ts";
import { readFileRange } from "./_read_file.ts";
import {
  aggregateFile,
  type AggregateResult,
  aggregateResult,
  type BadRowSample,
  SalesAggregator,
  type SalesAggregatorOptions,
} from "./sales_aggregator.ts";

/** Options for {@linkcode aggregateFileParallel}. */
export interface ParallelAggregateOptions extends SalesAggregatorOptions {
  /** Threads to use, this one included. @default {navigator.hardwareConcurrency} */
  threads?: number;
  /**
   * Files smaller than this many bytes per thread use fewer threads: starting one costs more
   * than it saves on a small file.
   * @default {4194304}
   */
  minBytesPerThread?: number;
  /**
   * Where to cut the file, before moving each cut to just after the next line break (tests put
   * cuts where they want them). @default {equal ranges}
   */
  cutsNear?: number[];
}

/** What a worker reports for the ranges it aggregated. */
export interface PartResult {
  rows: number;
  badRows: number;
  bytes: number;
  /** LF bytes in the part, to number the lines of the parts after it. */
  lineFeeds: number;
  /** Line numbers count from 1 at the part's start. */
  badRowSamples: BadRowSample[];
  totals: PackedTotals;
}

const WORKER = new URL("./_aggregate_worker.ts", import.meta.url);
/** Bytes this thread parses while a worker starts (about 60 ms, at 500 MB/s). */
const HEAD_START_BYTES = 32 * 1024 * 1024;
const LF = 0x0a;

/** Aggregates a plain CSV file on `options.threads` threads; see the module doc. */
export async function aggregateFileParallel(
  path: string,
  options: ParallelAggregateOptions = {},
): Promise<AggregateResult> {
  const { threads = navigator.hardwareConcurrency, minBytesPerThread = 4 * 1024 * 1024 } = options;
  const aggregatorOptions: SalesAggregatorOptions = {
    maxRecordBytes: options.maxRecordBytes,
    maxDepartments: options.maxDepartments,
    maxBadRowSamples: options.maxBadRowSamples,
  };
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const count = Math.max(1, Math.min(threads, Math.floor(size / minBytesPerThread)));
  // The first range starts here at once, the others once their worker is up (tens of
  // milliseconds): the first gets that head start's worth of bytes more, so that all end together.
  const headStart = Math.min(HEAD_START_BYTES, Math.floor(size / (2 * count)));
  const nominal = options.cutsNear ??
    Array.from(
      { length: count - 1 },
      (_, k) => headStart + Math.floor(((size - headStart) * (k + 1)) / count),
    );
  const cuts = count > 1 || options.cutsNear ? await lineStartsAfter(file, nominal, size) : [];
  if (cuts.length === 0) return await aggregateFile(path, aggregatorOptions);

  const started = performance.now();
  const bounds = [0, ...cuts, size];
  // Ranges 1.. speculate on workers; range 0 runs here, at the file's real start.
  const workers = cuts.map(() => RangeWorker.acquire());
  const unreleased = new Set(workers);
  const release = (worker: RangeWorker) => unreleased.delete(worker) && worker.release();
  try {
    const speculative = workers.map((worker, i) =>
      worker.start({ path, start: bounds[i + 1], end: bounds[i + 2], options: aggregatorOptions })
    );
    // A rejection is awaited below; until then it must not count as unhandled.
    for (const guess of speculative) guess.catch(() => {});
    const head = new SalesAggregator(aggregatorOptions);
    await readFileRange(file, 0, bounds[1], (chunk) => head.push(chunk));

    // The owner of the bytes read so far: this thread's aggregator or a worker.
    let owner: RangeWorker | undefined;
    let atBoundary = head.atRecordBoundary;
    const parts: PartResult[] = [];
    for (let i = 0; i < workers.length; i++) {
      if (atBoundary) {
        // The guess holds: range i + 1 was aggregated from a record start.
        if (owner) parts.push(await finishPart(owner, unreleased));
        owner = workers[i];
        atBoundary = await speculative[i];
        continue;
      }
      // A record runs across the cut: the owner carries on, and the guess is dropped.
      release(workers[i]);
      const range = { start: bounds[i + 1], end: bounds[i + 2] };
      if (owner) {
        atBoundary = await owner.continue(range);
      } else {
        await readFileRange(file, range.start, range.end, (chunk) => head.push(chunk));
        atBoundary = head.atRecordBoundary;
      }
    }
    if (owner) parts.push(await finishPart(owner, unreleased));
    return merge(head, parts, aggregatorOptions.maxBadRowSamples ?? 20, started);
  } finally {
    for (const worker of unreleased) worker.release();
  }
}

/** The part of `owner`, which finishing gives back to the idle workers. */
function finishPart(owner: RangeWorker, unreleased: Set<RangeWorker>): Promise<PartResult> {
  unreleased.delete(owner);
  return owner.finish();
}

/** The first part's aggregator takes in the others, in file order. */
function merge(
  head: SalesAggregator,
  parts: PartResult[],
  maxSamples: number,
  started: number,
): AggregateResult {
  let lineFeeds = head.lineFeeds;
  for (const part of parts) head.addTotals(part.totals);
  const first = head.finish();
  let { rows, badRows, bytes } = first;
  const samples = [...first.badRowSamples];
  for (const part of parts) {
    rows += part.rows;
    badRows += part.badRows;
    bytes += part.bytes;
    for (const sample of part.badRowSamples) {
      if (samples.length < maxSamples) {
        samples.push({ ...sample, line: sample.line + lineFeeds });
      }
    }
    lineFeeds += part.lineFeeds;
  }
  return aggregateResult({
    rows,
    badRows,
    bytes,
    badRowSamples: samples,
    elapsedSec: (performance.now() - started) / 1000,
  }, first.departmentTotals);
}

/**
 * For each position (ascending), the offset just after the first LF at or after it: where a
 * range may start. Cuts that would repeat or leave an empty range are dropped.
 */
async function lineStartsAfter(
  file: Deno.FsFile,
  positions: number[],
  size: number,
): Promise<number[]> {
  const cuts: number[] = [];
  const window = new Uint8Array(64 * 1024);
  for (const position of [...positions].sort((a, b) => a - b)) {
    let at = Math.max(position, cuts.at(-1) ?? 1);
    let cut = -1;
    while (cut < 0 && at < size) {
      await file.seek(at, Deno.SeekMode.Start);
      const length = await file.read(window) ?? 0;
      if (length === 0) break;
      const lineFeed = window.subarray(0, length).indexOf(LF);
      if (lineFeed >= 0) cut = at + lineFeed + 1;
      at += length;
    }
    if (cut > 0 && cut < size && cut !== cuts.at(-1)) cuts.push(cut);
  }
  return cuts;
}

/** Departments past which a worker is not kept for the next file (see `RangeWorker.finish`). */
const BIG_PART_DEPARTMENTS = 10_000;
/** How long an idle worker waits for the next file before it stops. */
const IDLE_WORKER_MS = 2000;
type IdleTimer = ReturnType<typeof setTimeout>;
/** Workers between two files: starting one costs tens of milliseconds (seconds when type-checked). */
const idleWorkers: RangeWorker[] = [];
let idleTimer: IdleTimer | undefined;

/** One worker and its requests, answered in order. */
class RangeWorker {
  readonly #worker = new Worker(WORKER, { type: "module" });
  readonly #pending: { resolve: (reply: Reply) => void; reject: (error: unknown) => void }[] = [];
  #broken = false;

  /** An idle worker, or a new one. */
  static acquire(): RangeWorker {
    clearTimeout(idleTimer);
    return idleWorkers.pop() ?? new RangeWorker();
  }

  private constructor() {
    this.#worker.onmessage = (event: MessageEvent<Reply>) => {
      const waiter = this.#pending.shift();
      if (event.data.type === "error") {
        const { message, code } = event.data;
        waiter?.reject(
          code === undefined ? new Error(message) : new AppError(code as Status, message),
        );
      } else {
        waiter?.resolve(event.data);
      }
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#broken = true;
      for (const waiter of this.#pending.splice(0)) waiter.reject(event.error ?? event.message);
    };
  }

  /** Starts a part at `[start, end)` of `path`; true if it ends between records. */
  async start(
    range: { path: string; start: number; end: number; options: SalesAggregatorOptions },
  ): Promise<boolean> {
    const reply = await this.#ask({ type: "start", ...range });
    return reply.type === "range" && reply.atRecordBoundary;
  }

  /** Continues the part with `[start, end)`; true if it ends between records. */
  async continue(range: { start: number; end: number }): Promise<boolean> {
    const reply = await this.#ask({ type: "range", ...range });
    return reply.type === "range" && reply.atRecordBoundary;
  }

  /** Ends the part and returns it; the worker goes back to the idle ones. */
  async finish(): Promise<PartResult> {
    const reply = await this.#ask({ type: "finish" });
    if (reply.type !== "result") {
      this.#stop();
      throw new Error("Unexpected reply from an aggregate worker");
    }
    // An idle worker collects no garbage: one that held a big department table would keep its
    // tens of megabytes, so it stops instead of waiting for the next file.
    if (reply.part.totals.ends.length > BIG_PART_DEPARTMENTS) this.#stop();
    else this.release();
    return reply.part;
  }

  /**
   * Gives the worker back to the idle ones, even busy: it answers requests in order, so the next
   * part's requests wait behind the dropped part's (which the next `start` discards). A worker
   * that failed stops instead.
   */
  release(): void {
    if (this.#broken) return this.#stop();
    idleWorkers.push(this);
    clearTimeout(idleTimer);
    // A web worker keeps the process alive; the timer stops the idle ones, and does not.
    idleTimer = setTimeout(() => {
      for (const worker of idleWorkers.splice(0)) worker.#stop();
    }, IDLE_WORKER_MS);
    Deno.unrefTimer(idleTimer);
  }

  #stop(): void {
    this.#broken = true;
    this.#worker.terminate();
    for (const waiter of this.#pending.splice(0)) {
      waiter.reject(new Error("The aggregate worker was stopped"));
    }
  }

  #ask(request: unknown): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#worker.postMessage(request);
    });
  }
}

type Reply =
  | { type: "range"; atRecordBoundary: boolean }
  | { type: "result"; part: PartResult }
  | { type: "error"; message: string; code?: number };
