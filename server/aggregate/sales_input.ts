/**
 * The bytes of one uploaded file on their way into a {@linkcode SalesAggregator}: recognizes gzip by
 * its magic bytes and inflates it on a worker thread with `node:zlib` while the aggregator parses
 * (see `_gunzip.ts`), and enforces the upload size limit on the bytes received and, for gzip, on
 * the inflated bytes too (so a gzip bomb fails early and small). Gzip is checked as `gzip -t`
 * does: each member's CRC-32 and length, and nothing but members to the end.
 *
 * {@linkcode SalesInput.push} takes the bytes at once (the caller may reuse its buffer as soon as
 * it returns) and resolves when the input is ready for more: awaiting it is the backpressure.
 * Several files aggregate into one result: {@linkcode SalesInput.nextFile} ends one and starts the
 * next, each read on its own (gzip or not, header or not, lines from 1).
 *
 * @example
 * ```ts
 * import { gzipSync } from "node:zlib";
 * import { SalesInput } from "./sales_input.ts";
 *
 * const input = new SalesInput();
 * await input.push(gzipSync(new TextEncoder().encode("Toys,2024-01-02,3\n")));
 * if ((await input.finish()).totals.get("Toys") !== 3n) throw new Error("wrong total");
 * ```
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";
import { concatBytes } from "./_bytes.ts";
import { Gunzip } from "./_gunzip.ts";
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

/** One upload's bytes: plain CSV or gzip-compressed CSV, decided by the first two bytes. */
export class SalesInput {
  readonly #aggregator: SalesAggregator;
  readonly #maxBytes: number;
  #received = 0;
  #inflated = 0;
  /** Undefined until the first two bytes tell whether this is gzip. */
  #gzip: boolean | undefined;
  /** The inflater of gzip input; undefined for plain input. */
  #gunzip: Gunzip | undefined;
  #held: Uint8Array = new Uint8Array(0);
  #result: Promise<AggregateResult> | undefined;
  /** Why the input was refused (too large, corrupt gzip, too many departments); final. */
  #failure: unknown;
  /** The current file's name (`""` when unnamed), for errors about its gzip data. */
  #fileName: string;
  #writable: WritableStream<Uint8Array> | undefined;

  /** An input whose first file is named `options.filename`. */
  constructor(options: SalesInputOptions = {}) {
    this.#aggregator = new SalesAggregator(options);
    this.#maxBytes = options.maxBytes ?? Infinity;
    this.#fileName = options.filename ?? "";
  }

  /**
   * A sink for the bytes, for stream pipes: each chunk is {@linkcode push}ed (awaited, for
   * backpressure), closing the stream finishes the input (then read the result with
   * {@linkcode finish}), and aborting it closes the input.
   *
   * @example
   * ```ts
   * import { gzipSync } from "node:zlib";
   * import { SalesInput } from "./sales_input.ts";
   *
   * const input = new SalesInput({ filename: "toys.csv.gz" });
   * await ReadableStream.from([gzipSync(new TextEncoder().encode("Toys,2024-01-02,3\n"))])
   *   .pipeTo(input.writable);
   * const result = await input.finish();
   * if (result.files[0].name !== "toys.csv.gz" || result.totals.get("Toys") !== 3n) {
   *   throw new Error("wrong result");
   * }
   * ```
   */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream({
      write: (chunk) => this.push(chunk),
      close: async () => {
        await this.finish();
      },
      abort: () => this.close(),
    });
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

  /** Rows aggregated so far, good and bad (for gzip, of the bytes inflated so far). */
  get rows(): number {
    return this.#aggregator.rows;
  }

  /** Bad rows so far. */
  get badRows(): number {
    return this.#aggregator.badRows;
  }

  /**
   * Takes the next bytes of the file before it returns, so `chunk` may be reused at once; the
   * promise resolves when more may be pushed, and rejects once the input is refused.
   */
  push(chunk: Uint8Array): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    try {
      this.#push(chunk);
    } catch (error) {
      return Promise.reject(this.#fail(error));
    }
    if (this.#gunzip === undefined) return Promise.resolve();
    return this.#gunzip.drained().catch((error) => {
      throw this.#fail(error);
    });
  }

  /**
   * Ends the current file and starts the next one, named `name` (see
   * {@linkcode SalesAggregator.nextFile}): its gzip data is checked to the end, and the next file
   * is recognized as gzip or plain afresh. Rejects as {@linkcode finish} would for this file.
   */
  async nextFile(name: string): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#result) throw new Error("SalesInput.nextFile() called after finish()");
    try {
      await this.#endFile();
      this.#aggregator.nextFile(name);
    } catch (error) {
      throw this.#fail(error);
    }
    this.#fileName = name;
    this.#gzip = undefined;
    this.#gunzip = undefined;
  }

  #push(chunk: Uint8Array): void {
    this.#received += chunk.length;
    if (this.#received > this.#maxBytes) throw this.#tooLarge();
    if (this.#gzip === undefined) {
      const start = concatBytes(this.#held, chunk);
      if (start.length < 2) {
        this.#held = new Uint8Array(start); // a copy, even of a Buffer
        return;
      }
      this.#held = new Uint8Array(0);
      this.#gzip = start[0] === 0x1f && start[1] === 0x8b;
      if (this.#gzip) {
        this.#gunzip = new Gunzip((piece) => this.#takeInflated(piece));
      }
      chunk = start;
    }
    if (this.#gunzip) this.#gunzip.write(chunk);
    else this.#aggregator.push(chunk);
  }

  /**
   * Ends the input and returns the aggregation; truncated gzip, or bytes after its last member,
   * are INVALID_ARGUMENT. Calling it again returns the same result (a FinishUpload retried after a
   * failed save). A refused input throws the same error again: the aggregator may have consumed
   * the record that made it fail, so finishing again would drop that record silently.
   */
  finish(): Promise<AggregateResult> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    this.#result ??= this.#finish().catch((error) => {
      throw this.#fail(error);
    });
    return this.#result;
  }

  /** Stops the inflater of an input that will not be finished (an abandoned upload); idempotent. */
  close(): void {
    this.#gunzip?.close();
  }

  async #finish(): Promise<AggregateResult> {
    await this.#endFile();
    return this.#aggregator.finish();
  }

  /** Hands over the current file's last bytes: those held to tell gzip, or the inflater's. */
  async #endFile(): Promise<void> {
    if (this.#gzip === undefined && this.#held.length > 0) {
      this.#gzip = false;
      this.#aggregator.push(this.#held);
      this.#held = new Uint8Array(0);
    }
    await this.#gunzip?.end();
  }

  #takeInflated(piece: Uint8Array): void {
    this.#inflated += piece.length;
    if (this.#inflated > this.#maxBytes) throw this.#tooLarge();
    this.#aggregator.push(piece);
  }

  /** Records the input's refusal and stops the inflater; returns the error to throw. */
  #fail(error: unknown): unknown {
    // A named file's corrupt gzip says which file it is; unnamed input keeps the plain message.
    if (
      this.#failure === undefined && this.#fileName !== "" && this.#gzip &&
      error instanceof AppError && error.code === Status.INVALID_ARGUMENT
    ) {
      error = new AppError(error.code, `${error.message} (in ${this.#fileName})`, { cause: error });
    }
    this.#failure ??= error;
    this.#gunzip?.fail(error);
    return this.#failure;
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
  try {
    await readFileChunks(path, (chunk) => input.push(chunk));
    return await input.finish();
  } finally {
    input.close();
  }
}
