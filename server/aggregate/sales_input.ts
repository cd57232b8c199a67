/**
 * The bytes of one uploaded file on their way into a {@linkcode SalesAggregator}: recognizes gzip by
 * its magic bytes and inflates it on the fly, and enforces the upload size limit on the bytes
 * received and, for gzip, on the inflated bytes too (so a gzip bomb fails early and small). Gzip is
 * checked as `gzip -t` does: each member's CRC-32 and length, and nothing but members to the end.
 *
 * @example
 * ```ts
 * import { gzipSync } from "fflate";
 * import { SalesInput } from "./sales_input.ts";
 *
 * const input = new SalesInput();
 * input.push(gzipSync(new TextEncoder().encode("Toys,2024-01-02,3\n")));
 * if (input.finish().totals.get("Toys") !== 3n) throw new Error("wrong total");
 * ```
 *
 * @module
 */

import {
  Z_BUF_ERROR,
  Z_NO_FLUSH,
  Z_OK,
  Z_STREAM_END,
  zlibInflate,
  zlibInflateInit2,
  zlibInflateReset,
  ZStream,
} from "pako";
import { AppError, Status } from "../errors.ts";
import { concatBytes } from "./_bytes.ts";
import { readFileChunks } from "./_read_file.ts";
import {
  type AggregateResult,
  SalesAggregator,
  type SalesAggregatorOptions,
} from "./sales_aggregator.ts";

/** Options for {@linkcode SalesInput}. */
export interface SalesInputOptions extends SalesAggregatorOptions {
  /**
   * Largest upload in bytes, counted on the bytes received and on the inflated bytes of gzip input;
   * more throws `AppError(RESOURCE_EXHAUSTED)`.
   * @default {Infinity}
   */
  maxBytes?: number;
}

/**
 * Inflated bytes handed to the aggregator per step. zlib stops when its output buffer is full, so
 * memory stays this small whatever the compression ratio (deflate expands up to ~1032x).
 */
const INFLATE_OUTPUT_BYTES = 256 * 1024;
/** zlib `windowBits` for gzip only (16 + 15): header, CRC-32 and length are all checked. */
const GZIP_WINDOW_BITS = 16 + 15;
const NO_BYTES = new Uint8Array(0);

/** One upload's bytes: plain CSV or gzip-compressed CSV, decided by the first two bytes. */
export class SalesInput {
  readonly #aggregator: SalesAggregator;
  readonly #maxBytes: number;
  #received = 0;
  #inflated = 0;
  /** Undefined until the first two bytes tell whether this is gzip. */
  #gzip: boolean | undefined;
  /** The zlib stream inflating gzip input; undefined for plain input. */
  #zstream: ZStream | undefined;
  /** Between gzip members: the last one ended with a valid trailer; another may follow. */
  #memberEnded = false;
  #held: Uint8Array = new Uint8Array(0);
  #result: AggregateResult | undefined;
  /** Why the input was refused (too large, corrupt gzip, too many departments); final. */
  #failure: unknown;

  constructor(options: SalesInputOptions = {}) {
    this.#aggregator = new SalesAggregator(options);
    this.#maxBytes = options.maxBytes ?? Infinity;
  }

  /** Bytes received so far (compressed bytes for gzip). */
  get receivedBytes(): number {
    return this.#received;
  }

  /** True for gzip input, false for plain, undefined until two bytes have arrived. */
  get isGzip(): boolean | undefined {
    return this.#gzip;
  }

  /** True once the input was refused: no later call can succeed. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Rows aggregated so far, good and bad. */
  get rows(): number {
    return this.#aggregator.rows;
  }

  /** Bad rows so far. */
  get badRows(): number {
    return this.#aggregator.badRows;
  }

  /** Takes the next bytes of the file; synchronous, and the chunk is not kept. */
  push(chunk: Uint8Array): void {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      this.#push(chunk);
    } catch (error) {
      this.#failure = error;
      throw error;
    }
  }

  #push(chunk: Uint8Array): void {
    this.#received += chunk.length;
    if (this.#received > this.#maxBytes) throw this.#tooLarge();
    if (this.#gzip === undefined) {
      const start = concatBytes(this.#held, chunk);
      if (start.length < 2) {
        this.#held = start;
        return;
      }
      this.#held = new Uint8Array(0);
      this.#gzip = start[0] === 0x1f && start[1] === 0x8b;
      if (this.#gzip) this.#zstream = newGzipStream();
      chunk = start;
    }
    if (this.#zstream) this.#inflate(this.#zstream, chunk);
    else this.#aggregator.push(chunk);
  }

  /**
   * Ends the input and returns the aggregation; a truncated gzip stream is INVALID_ARGUMENT. Calling
   * it again returns the same result (a FinishUpload retried after a failed save): the inflater
   * must not be ended twice. A refused input throws the same error again: the aggregator may have
   * consumed the record that made it fail, so finishing again would drop that record silently.
   */
  finish(): AggregateResult {
    if (this.#result) return this.#result;
    if (this.#failure !== undefined) throw this.#failure;
    try {
      this.#result = this.#finish();
    } catch (error) {
      this.#failure = error;
      throw error;
    }
    return this.#result;
  }

  #finish(): AggregateResult {
    if (this.#gzip === undefined && this.#held.length > 0) {
      this.#gzip = false;
      this.#aggregator.push(this.#held);
    }
    if (this.#zstream && !this.#memberEnded) {
      throw new AppError(Status.INVALID_ARGUMENT, "The gzip data is truncated: it ends mid-stream");
    }
    return this.#aggregator.finish();
  }

  /** Inflates all of `chunk`, handing the output to the aggregator a buffer at a time. */
  #inflate(zstream: ZStream, chunk: Uint8Array): void {
    zstream.input = chunk;
    zstream.next_in = 0;
    zstream.avail_in = chunk.length;
    try {
      for (;;) {
        if (this.#memberEnded) {
          if (zstream.avail_in === 0) break;
          // More bytes after a member: they must be another member (`cat a.gz b.gz`).
          zlibInflateReset(zstream);
          this.#memberEnded = false;
        }
        zstream.next_out = 0;
        zstream.avail_out = INFLATE_OUTPUT_BYTES;
        const status = zlibInflate(zstream, Z_NO_FLUSH);
        const produced = zstream.next_out;
        if (produced > 0) this.#takeInflated(zstream.output.subarray(0, produced));
        if (status === Z_STREAM_END) {
          this.#memberEnded = true;
        } else if (status !== Z_OK && status !== Z_BUF_ERROR) {
          throw new AppError(
            Status.INVALID_ARGUMENT,
            `The gzip data is corrupt: ${zstream.msg || `zlib status ${status}`}`,
          );
        } else if (zstream.avail_out > 0) {
          // Room left in the output: zlib took all the input it could and wants more. (A full
          // buffer may hide more output, so that case goes round again.)
          if (zstream.avail_in > 0) {
            throw new AppError(
              Status.INVALID_ARGUMENT,
              "The gzip data is corrupt: inflate stalled",
            );
          }
          break;
        }
      }
    } finally {
      // The caller may reuse its buffer; zlib keeps what it needs in its own window.
      zstream.input = NO_BYTES;
      zstream.avail_in = 0;
    }
  }

  #takeInflated(data: Uint8Array): void {
    this.#inflated += data.length;
    if (this.#inflated > this.#maxBytes) throw this.#tooLarge();
    if (data.length > 0) this.#aggregator.push(data);
  }

  #tooLarge(): AppError {
    return new AppError(
      Status.RESOURCE_EXHAUSTED,
      `Upload too large: the limit is ${this.#maxBytes} bytes${
        this.#gzip ? " (after decompression)" : ""
      }`,
    );
  }
}

function newGzipStream(): ZStream {
  const zstream = new ZStream();
  const status = zlibInflateInit2(zstream, GZIP_WINDOW_BITS);
  if (status !== Z_OK) throw new Error(`zlib inflateInit2 failed with status ${status}`);
  zstream.output = new Uint8Array(INFLATE_OUTPUT_BYTES);
  return zstream;
}

/** Aggregates a file, plain or gzip-compressed (see {@linkcode SalesInput}). */
export async function aggregateInputFile(
  path: string,
  options?: SalesInputOptions,
): Promise<AggregateResult> {
  const input = new SalesInput(options);
  await readFileChunks(path, (chunk) => input.push(chunk));
  return input.finish();
}
