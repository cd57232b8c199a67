/**
 * One upload in progress, whatever path its bytes take (unary, stream, chunked): every chunk goes
 * straight into a {@linkcode SalesInput} (gzip recognized and inflated on the fly) and its
 * aggregator, and only the result CSV ever reaches the disk. Limits that apply to every path
 * (upload size, departments, record size) belong here, in one place.
 *
 * @module
 */

import { formatResultCsv } from "../aggregate/result_csv.ts";
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

  /** Aggregates the next bytes of the file; synchronous, so `chunk` may be reused afterwards. */
  push(chunk: Uint8Array): void {
    if (chunk.length > 0) this.#aggregator.push(chunk);
  }

  /** Ends the input, writes the result CSV and describes it, with `downloadUrlOf(resultId)`. */
  async finish(
    store: ResultStore,
    downloadUrlOf: (resultId: string) => string,
  ): Promise<UploadResponse> {
    const result = this.#aggregator.finish();
    const resultId = await store.save(formatResultCsv(result.totals));
    return {
      resultId,
      downloadUrl: downloadUrlOf(resultId),
      rows: result.rows,
      badRows: result.badRows,
      departments: result.departments,
      elapsedSec: (performance.now() - this.#startedAt) / 1000,
      badRowSamples: result.badRowSamples.map(({ line, reason, raw }) => ({ line, reason, raw })),
    };
  }
}
