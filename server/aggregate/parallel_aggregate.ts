/**
 * Aggregates a plain CSV file on several threads: the file is cut into ranges at line breaks, one
 * range per thread, and the parts merged exactly. The result is the one a single
 * {@linkcode SalesAggregator} gives, bad-row samples and their line numbers included.
 *
 * This thread starts at the file's first byte at once; a new worker takes tens of milliseconds
 * to load (more on a busy machine). So the file is not split up front: when a worker is ready, it
 * takes the end of what this thread has still to read (its share: half, with one worker, less
 * what its JIT warm-up costs), and this thread's range ends where the worker's starts. However
 * long the start-up, the threads end together.
 *
 * A line break may sit inside a quoted field, and only the bytes before it can tell. So each
 * worker speculates that its range starts a record; when the thread before it ends its own range,
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
 * if (result.totals.get("Toys") !== 11n) throw new Error("wrong total");
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

import { AppError, type Status } from "../errors.ts";
import type { PackedTotals } from "./_department_table.ts";
import { readDoubleBuffered, readFileChunks, readFileRange } from "./_read_file.ts";
import {
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
   * Where to cut the file, before moving each cut to just after the next line break, instead of
   * splitting it as workers get ready (tests put cuts where they want them). @default {none}
   */
  cutsNear?: number[];
  /**
   * Awaited when a worker is ready, before it takes its part (tests make a worker slow to start
   * with it). @default {none}
   */
  workerReady?: () => Promise<void> | void;
  /** Told the range `[start, end)` each worker takes (tests check where the file was split). */
  onWorkerPart?: (start: number, end: number) => void;
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
/**
 * A new worker parses its first megabytes before its JIT has optimized the parser (about 30 ms
 * on the benchmark machine), and this thread started before it: the worker takes that much less.
 */
const WARM_UP_BYTES = 16 * 1024 * 1024;
/** Read size while workers are loading: the first chunks are parsed before the JIT is done. */
const EARLY_READ_BYTES = 128 * 1024;
/** A worker's part smaller than this saves less than handing it over costs. */
const MIN_PART_BYTES = 1 << 20;
const LF = 0x0a;

/** A range a worker took, and whether it ends between records (once the worker is through). */
interface WorkerPart {
  worker: RangeWorker;
  start: number;
  end: number;
  atBoundary: Promise<boolean>;
}

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
    filename: options.filename,
  };
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const count = Math.max(1, Math.min(threads, Math.floor(size / minBytesPerThread)));
  const fixedCuts = options.cutsNear && await lineStartsAfter(file, options.cutsNear, size);
  const workerCount = fixedCuts ? fixedCuts.length : count - 1;
  if (workerCount === 0) {
    const aggregator = new SalesAggregator(aggregatorOptions);
    await readFileChunks(path, (chunk) => aggregator.push(chunk));
    return aggregator.finish();
  }

  const started = performance.now();
  const workers = Array.from({ length: workerCount }, () => RangeWorker.acquire());
  const unreleased = new Set(workers);
  const release = (worker: RangeWorker) => unreleased.delete(worker) && worker.release();
  const parts: WorkerPart[] = [];
  const take = (worker: RangeWorker, start: number, end: number) => {
    const atBoundary = worker.start({ path, start, end, options: aggregatorOptions });
    // A rejection is awaited below; until then it must not count as unhandled.
    atBoundary.catch(() => {});
    parts.push({ worker, start, end, atBoundary });
    options.onWorkerPart?.(start, end);
  };
  try {
    // Range 0 runs here, at the file's real start; the workers' ranges speculate.
    const head = new SalesAggregator(aggregatorOptions);
    if (fixedCuts) {
      const bounds = [...fixedCuts, size];
      workers.forEach((worker, i) => take(worker, bounds[i], bounds[i + 1]));
      await readFileRange(file, 0, bounds[0], (chunk) => head.push(chunk));
    } else {
      await readSplitting({
        file,
        path,
        size,
        head,
        workers,
        take,
        release,
        minPartBytes: Math.min(minBytesPerThread, MIN_PART_BYTES),
        workerReady: options.workerReady,
      });
      for (const worker of workers) {
        if (!parts.some((part) => part.worker === worker)) release(worker);
      }
      parts.sort((a, b) => a.start - b.start);
    }

    // The owner of the bytes read so far: this thread's aggregator or a worker.
    let owner: RangeWorker | undefined;
    let atBoundary = head.atRecordBoundary;
    const results: PartResult[] = [];
    for (const part of parts) {
      if (atBoundary) {
        // The guess holds: the part was aggregated from a record start.
        if (owner) results.push(await finishPart(owner, unreleased));
        owner = part.worker;
        atBoundary = await part.atBoundary;
        continue;
      }
      // A record runs across the cut: the owner carries on, and the guess is dropped.
      release(part.worker);
      const range = { start: part.start, end: part.end };
      if (owner) {
        atBoundary = await owner.continue(range);
      } else {
        await readFileRange(file, range.start, range.end, (chunk) => head.push(chunk));
        atBoundary = head.atRecordBoundary;
      }
    }
    if (owner) results.push(await finishPart(owner, unreleased));
    return merge(head, results, aggregatorOptions.maxBadRowSamples ?? 20, started);
  } finally {
    for (const worker of unreleased) worker.release();
  }
}

/** What {@linkcode readSplitting} works with. */
interface SplitReading {
  file: Deno.FsFile;
  path: string;
  size: number;
  /** This thread's aggregator, for the file's first range. */
  head: SalesAggregator;
  /** Workers that may take a part once ready. */
  workers: RangeWorker[];
  /** Hands `[start, end)` to a worker. */
  take: (worker: RangeWorker, start: number, end: number) => void;
  /** Gives back a worker that got ready too late for a part worth its cost. */
  release: (worker: RangeWorker) => void;
  minPartBytes: number;
  workerReady?: () => Promise<void> | void;
}

/**
 * Reads the file from its start into `head`, chunk by chunk, up to an end that moves back: at each
 * chunk, every worker that got ready since takes its share of what is left past the bytes asked
 * for so far (see the module doc). Workers that get ready after the last chunk take none.
 */
async function readSplitting(reading: SplitReading): Promise<void> {
  const { file, head, take, release, minPartBytes } = reading;
  /** Ready workers, in the order they got ready. */
  const ready: RangeWorker[] = [];
  /** Workers that may still take a part: those in `ready`, and those not ready yet. */
  let waiting = reading.workers.length;
  for (const worker of reading.workers) {
    // One already ready (kept from an earlier file) takes its part before the first read.
    if (worker.isReady && !reading.workerReady) ready.push(worker);
    else {
      worker.ready.then(() => reading.workerReady?.()).then(
        () => ready.push(worker),
        () => waiting--,
      );
    }
  }
  let end = reading.size;
  /** Bytes asked of the file so far: the last read may still be on its way. */
  let asked = 0;
  let probe: Deno.FsFile | undefined;

  const split = async () => {
    while (ready.length > 0) {
      const worker = ready.shift()!;
      // The shares of the workers still to come count too: if they all came now, all would end
      // together.
      const warmUp = worker.isWarm || asked === 0 ? 0 : WARM_UP_BYTES;
      const share = Math.floor((end - asked - warmUp) / (waiting + 1));
      waiting--;
      let cut = -1;
      if (share >= minPartBytes) {
        // Its own handle: a read on `file` may be on its way, at `file`'s position.
        probe ??= await Deno.open(reading.path, { read: true });
        cut = await lineStartAfter(probe, end - share, end);
      }
      if (cut > asked && cut < end) {
        take(worker, cut, end);
        end = cut;
      } else {
        release(worker);
      }
    }
  };
  const readNext = async (buffer: Uint8Array): Promise<number> => {
    // A ready worker waits for the chunk being parsed: small ones while workers are loading.
    const chunk = waiting > 0 && asked < WARM_UP_BYTES ? EARLY_READ_BYTES : buffer.length;
    const wanted = Math.min(chunk, end - asked);
    if (wanted <= 0) return 0;
    asked += wanted;
    return await readFully(file, buffer.subarray(0, wanted));
  };

  try {
    await file.seek(0, Deno.SeekMode.Start);
    await split();
    await readDoubleBuffered(readNext, async (chunk) => {
      head.push(chunk);
      await split();
    });
  } finally {
    probe?.close();
  }
}

/** Fills `buffer` from the file's position, unless the file ends first; returns the bytes read. */
async function readFully(file: Deno.FsFile, buffer: Uint8Array): Promise<number> {
  let length = 0;
  while (length < buffer.length) {
    const read = await file.read(buffer.subarray(length));
    if (read === null) break;
    length += read;
  }
  return length;
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
    files: [{ ...first.files[0], rows, badRows }],
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
  for (const position of [...positions].sort((a, b) => a - b)) {
    const cut = await lineStartAfter(file, Math.max(position, cuts.at(-1) ?? 1), size);
    if (cut > 0 && cut < size && cut !== cuts.at(-1)) cuts.push(cut);
  }
  return cuts;
}

/** The offset just after the first LF in `[from, end)` of the file, or -1 if there is none. */
async function lineStartAfter(file: Deno.FsFile, from: number, end: number): Promise<number> {
  const window = new Uint8Array(64 * 1024);
  for (let at = from; at < end;) {
    await file.seek(at, Deno.SeekMode.Start);
    const length = await file.read(window.subarray(0, Math.min(window.length, end - at))) ?? 0;
    if (length === 0) break;
    const lineFeed = window.subarray(0, length).indexOf(LF);
    if (lineFeed >= 0) return at + lineFeed + 1;
    at += length;
  }
  return -1;
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
  readonly #ready = Promise.withResolvers<void>();
  #isReady = false;
  #isWarm = false;
  #broken = false;

  /** An idle worker, or a new one. */
  static acquire(): RangeWorker {
    clearTimeout(idleTimer);
    return idleWorkers.pop() ?? new RangeWorker();
  }

  private constructor() {
    // Nothing waits for a worker that fails before it is ready.
    this.#ready.promise.catch(() => {});
    this.#worker.onmessage = (event: MessageEvent<Reply>) => {
      if (event.data.type === "ready") {
        this.#isReady = true;
        return this.#ready.resolve();
      }
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
      this.#ready.reject(event.error ?? event.message);
      for (const waiter of this.#pending.splice(0)) waiter.reject(event.error ?? event.message);
    };
  }

  /** Whether the worker has parsed a part before: its JIT has optimized the parser. */
  get isWarm(): boolean {
    return this.#isWarm;
  }

  /** Whether the worker has loaded its module: it starts a part at once. */
  get isReady(): boolean {
    return this.#isReady;
  }

  /** Settles once the worker has loaded its module: from then on, it starts a part at once. */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /** Starts a part at `[start, end)` of `path`; true if it ends between records. */
  async start(
    range: { path: string; start: number; end: number; options: SalesAggregatorOptions },
  ): Promise<boolean> {
    const reply = await this.#ask({ type: "start", ...range });
    this.#isWarm = true;
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
    const stopped = new Error("The aggregate worker was stopped");
    this.#ready.reject(stopped);
    for (const waiter of this.#pending.splice(0)) waiter.reject(stopped);
  }

  #ask(request: unknown): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#worker.postMessage(request);
    });
  }
}

type Reply =
  | { type: "ready" }
  | { type: "range"; atRecordBoundary: boolean }
  | { type: "result"; part: PartResult }
  | { type: "error"; message: string; code?: number };
