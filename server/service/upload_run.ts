/**
 * One upload in progress, whatever path its bytes take (unary, stream, chunked): every chunk goes
 * straight into a {@linkcode SalesInput} (gzip recognized and inflated on the fly) and its
 * aggregator, and only the result CSV ever reaches the disk. Limits that apply to every path
 * (upload size, departments, record size) belong here, in one place.
 *
 * @module
 */

import { resultCsvChunks } from "../aggregate/result_csv.ts";
import { SalesInput, type SalesInputOptions } from "../aggregate/sales_input.ts";
import type { ResultStore } from "../storage/result_store.ts";
import type { UploadResponse } from "./types.ts";

/** An upload being aggregated; {@linkcode UploadRun.finish} stores the result. */
export class UploadRun {
  readonly #aggregator: SalesInput;
  /** The whole upload is timed, from its first call to the stored result. */
  readonly #startedAt = performance.now();

  constructor(
    /** The client's name for the file; informational only. */
    readonly filename: string,
    inputOptions?: SalesInputOptions,
  ) {
    this.#aggregator = new SalesInput(inputOptions);
  }

  /** Bytes received so far (compressed bytes for gzip). */
  get bytes(): number {
    return this.#aggregator.receivedBytes;
  }

  /** Rows (good and bad) aggregated so far. */
  get rows(): number {
    return this.#aggregator.rows;
  }

  /** Bad rows so far. */
  get badRows(): number {
    return this.#aggregator.badRows;
  }

  /** True once the input was refused (too large, corrupt, too many departments): a retry cannot help. */
  get inputFailed(): boolean {
    return this.#aggregator.failed;
  }

  /**
   * Aggregates the next bytes of the file. They are taken before it returns, so `chunk` may be
   * reused at once and the upload's offset may move on; the promise resolves when the run is
   * ready for more (gzip is inflated on another thread) and rejects when the input is refused.
   */
  push(chunk: Uint8Array): Promise<void> {
    return chunk.length > 0 ? this.#aggregator.push(chunk) : Promise.resolve();
  }

  /** Releases what an upload dropped before {@linkcode UploadRun.finish} holds; idempotent. */
  close(): void {
    this.#aggregator.close();
  }

  /**
   * Ends the input, writes the result CSV with its metadata (file name, counts) and describes it,
   * with `downloadUrlOf(resultId)`.
   */
  async finish(
    store: ResultStore,
    downloadUrlOf: (resultId: string) => string,
  ): Promise<UploadResponse> {
    const result = await this.#aggregator.finish();
    const badRowSamples = result.badRowSamples.map(({ line, reason, raw }) => ({
      line,
      reason,
      raw,
    }));
    const resultId = await store.saveChunks(resultCsvChunks(result.departmentTotals), {
      filename: this.filename,
      rows: result.rows,
      badRows: result.badRows,
      departments: result.departments,
      badRowSamples,
    });
    return {
      resultId,
      downloadUrl: downloadUrlOf(resultId),
      rows: result.rows,
      badRows: result.badRows,
      departments: result.departments,
      elapsedSec: (performance.now() - this.#startedAt) / 1000,
      badRowSamples,
    };
  }
}
