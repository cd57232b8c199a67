/**
 * The resumable upload loop, whatever carries the calls: each chunk is appended at the offset the
 * server committed, retried with backoff when the call may simply have been lost (the server
 * acknowledges a repeated chunk without counting it twice), and checked against what the server
 * says it committed. The page (gRPC-Web, `upload_client.ts`) and `deno task upload --chunked`
 * (grpc-js, `server/grpc/sales_client.ts`) both run it, each passing its own calls; so it imports
 * nothing from Deno, Node or a transport, and runs in the browser.
 *
 * @example
 * ```ts
 * import { appendChunks } from "./resumable_upload.ts";
 * const received: number[] = [];
 * const offset = await appendChunks({
 *   next: (offset) => Promise.resolve(offset < 6 ? new Uint8Array(3) : undefined),
 *   sizeOf: (chunk) => chunk.length,
 *   append: (offset, chunk) => {
 *     received.push(offset);
 *     return Promise.resolve({ committedOffset: offset + chunk.length, rows: 0, badRows: 0 });
 *   },
 * });
 * if (offset !== 6 || received.join() !== "0,3") throw new Error(`${offset} ${received}`);
 * ```
 *
 * @module
 */

/** What `AppendUpload` answers: how far the server committed, and the rows counted so far. */
export interface AppendProgress {
  committedOffset: number;
  rows: number;
  badRows: number;
}

/** A retry about to wait, for progress reports. */
export interface RetryNotice {
  /** The try that comes after the wait, the first counted as 1. */
  attempt: number;
  attempts: number;
  delayMs: number;
  error: unknown;
}

/** How {@linkcode withRetry} retries. */
export interface RetryOptions {
  /** Tries before giving up, the first included. @default {1} (no retry) */
  attempts?: number;
  /** Wait before the first retry; doubles each time, with ±20% jitter. @default {500} */
  retryDelayMs?: number;
  /** Whether a failure may be retried as it is (the call or its reply may have been lost). */
  isRetryable?: (error: unknown) => boolean;
  /** Aborting stops the retries and the wait. */
  signal?: AbortSignal;
  /** Called before waiting for a retry. */
  onRetry?: (notice: RetryNotice) => void;
  /** Called after the wait, before the retry. */
  onRetryWaited?: () => void;
}

/** Runs `call`, retrying retryable failures with exponential backoff and jitter. */
export async function withRetry<T>(call: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 1;
  const retryDelayMs = options.retryDelayMs ?? 500;
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (
        options.signal?.aborted || attempt >= attempts || !(options.isRetryable?.(error) ?? false)
      ) {
        throw error;
      }
      // Jitter keeps many clients that lost the same server from retrying in lockstep.
      const delayMs = retryDelayMs * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
      options.onRetry?.({ attempt: attempt + 1, attempts, delayMs, error });
      await sleep(delayMs, options.signal);
      options.onRetryWaited?.();
    }
  }
}

/** What {@linkcode appendChunks} sends, and how. */
export interface AppendChunksOptions<C> {
  /** The chunk that goes at `offset`, or undefined at the end. */
  next: (offset: number) => Promise<C | undefined>;
  /** Bytes a chunk carries on the wire. */
  sizeOf: (chunk: C) => number;
  /** `AppendUpload` of `chunk` at `offset`. */
  append: (offset: number, chunk: C) => Promise<AppendProgress>;
  /** Offset of the first chunk. @default {0} */
  offset?: number;
  /**
   * Whether the server must commit each chunk whole. When false, a chunk committed in part is
   * followed by the chunk at the committed offset (a source that can seek, such as file slices).
   * @default {() => true}
   */
  wholeChunks?: () => boolean;
  /** Retries of each append. @default {no retry} */
  retry?: RetryOptions;
  /**
   * Called once a chunk is committed, with the milliseconds its append took; returning `"stop"`
   * ends the loop there (the caller restarts the upload differently).
   */
  onAppended?: (
    chunk: C,
    progress: AppendProgress,
    ms: number,
  ) => Promise<"stop" | void> | "stop" | void;
  /** The error for a commit that does not match the chunk sent. @default {an Error} */
  commitError?: (sentOffset: number, committedOffset: number) => Error;
}

/**
 * Appends chunks from `next` until it has none, each at the offset the server committed; returns
 * the final committed offset (or the one reached when `onAppended` stopped the loop).
 */
export async function appendChunks<C>(options: AppendChunksOptions<C>): Promise<number> {
  const signal = options.retry?.signal;
  let offset = options.offset ?? 0;
  for (;;) {
    signal?.throwIfAborted();
    const chunk = await options.next(offset);
    if (chunk === undefined) return offset;
    // An empty chunk carries nothing, and the server would take it for a repeat.
    if (options.sizeOf(chunk) === 0) continue;
    const sentOffset = offset;
    const started = performance.now();
    const progress = await withRetry(() => options.append(sentOffset, chunk), options.retry);
    const ms = performance.now() - started;
    const committed = progress.committedOffset;
    // A gzip member, or a piece of a stream, must arrive whole: the server may not keep part.
    const expected = sentOffset + options.sizeOf(chunk);
    const whole = options.wholeChunks?.() ?? true;
    if (committed <= sentOffset || (whole && committed !== expected)) {
      throw options.commitError?.(sentOffset, committed) ??
        new Error(`The server did not accept the data at ${sentOffset} (committed ${committed})`);
    }
    offset = committed;
    if (await options.onAppended?.(chunk, progress, ms) === "stop") return offset;
  }
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
