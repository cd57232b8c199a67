/**
 * The bytes of one uploaded file on their way into a {@linkcode SalesAggregator}: recognizes gzip by
 * its magic bytes and inflates it on the fly, and enforces the upload size limit on the bytes
 * received and, for gzip, on the inflated bytes too (so a gzip bomb fails early and small).
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

import { Gunzip } from "fflate";
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
 * Inflating a large chunk at once would allocate all of its output first (deflate expands up to
 * ~1032x), so gzip input goes in slices this small: at most ~4 MB of output per step.
 */
const GZIP_SLICE_BYTES = 4 * 1024;

/** One upload's bytes: plain CSV or gzip-compressed CSV, decided by the first two bytes. */
export class SalesInput {
  readonly #aggregator: SalesAggregator;
  readonly #maxBytes: number;
  #received = 0;
  #inflated = 0;
  /** Undefined until the first two bytes tell whether this is gzip. */
  #gzip: boolean | undefined;
  #gunzip: Gunzip | undefined;
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
      if (this.#gzip) this.#gunzip = new Gunzip((data) => this.#takeInflated(data));
      chunk = start;
    }
    if (!this.#gunzip) {
      this.#aggregator.push(chunk);
      return;
    }
    for (let i = 0; i < chunk.length; i += GZIP_SLICE_BYTES) {
      // fflate may keep the array it is given, so it gets a copy, never the caller's buffer.
      this.#inflate(chunk.slice(i, i + GZIP_SLICE_BYTES), false);
    }
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
    if (this.#gunzip) this.#inflate(new Uint8Array(0), true);
    return this.#aggregator.finish();
  }

  #inflate(slice: Uint8Array, final: boolean): void {
    try {
      this.#gunzip!.push(slice, final);
    } catch (error) {
      if (error instanceof AppError) throw error;
      throw new AppError(
        Status.INVALID_ARGUMENT,
        `The gzip data is corrupt or truncated: ${(error as Error).message}`,
        { cause: error },
      );
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

/** Aggregates a file, plain or gzip-compressed (see {@linkcode SalesInput}). */
export async function aggregateInputFile(
  path: string,
  options?: SalesInputOptions,
): Promise<AggregateResult> {
  const input = new SalesInput(options);
  await readFileChunks(path, (chunk) => input.push(chunk));
  return input.finish();
}
