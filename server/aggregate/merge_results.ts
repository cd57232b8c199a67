/**
 * One result from the results of several files aggregated one by one (each perhaps on several
 * threads): totals added up exactly, counts summed, the per-file lists and bad-row samples joined
 * in file order. It equals what one {@linkcode SalesInput} reading the same files with
 * `nextFile` between them returns, except for `elapsedSec`.
 *
 * @example
 * ```ts
 * import { mergeResults } from "./merge_results.ts";
 * import { SalesAggregator } from "./sales_aggregator.ts";
 *
 * const results = ["a.csv", "b.csv"].map((filename) => {
 *   const aggregator = new SalesAggregator({ filename });
 *   aggregator.push(new TextEncoder().encode("Toys,2024-01-02,3\n"));
 *   return aggregator.finish();
 * });
 * const merged = await mergeResults(results);
 * if (merged.totals.get("Toys") !== 6n || merged.files.length !== 2) throw new Error("wrong");
 * ```
 *
 * @module
 */

import { DepartmentTable, DepartmentTotals, mergePackedTotals } from "./_department_table.ts";
import {
  type AggregateResult,
  aggregateResult,
  type BadRowSample,
  type FileResult,
  keepBadRowSample,
} from "./sales_aggregator.ts";

/** Options for {@linkcode mergeResults}. */
export interface MergeResultsOptions {
  /**
   * Distinct departments allowed over all files; one more throws `AppError(RESOURCE_EXHAUSTED)`.
   * @default {Infinity}
   */
  maxDepartments?: number;
  /**
   * How many bad rows to keep as samples, over all files.
   * @default {20}
   */
  maxBadRowSamples?: number;
}

/**
 * Adds up `results`, taking each as it comes: an async iterable lets each file's result (and its
 * department table) go before the next file is read. `elapsedSec` counts from the call.
 */
export async function mergeResults(
  results: AsyncIterable<AggregateResult> | Iterable<AggregateResult>,
  options: MergeResultsOptions = {},
): Promise<AggregateResult> {
  const started = performance.now();
  const maxSamples = options.maxBadRowSamples ?? 20;
  const table = new DepartmentTable(options.maxDepartments ?? Infinity);
  const samples: BadRowSample[] = [];
  const files: FileResult[] = [];
  let rows = 0;
  let badRows = 0;
  let bytes = 0;
  for await (const result of results) {
    mergePackedTotals(table, result.departmentTotals.pack());
    rows += result.rows;
    badRows += result.badRows;
    bytes += result.bytes;
    // Each result numbers its own files from 0.
    const firstFile = files.length;
    for (const sample of result.badRowSamples) {
      keepBadRowSample(samples, { ...sample, fileIndex: firstFile + sample.fileIndex }, maxSamples);
    }
    files.push(...result.files);
  }
  const merged = aggregateResult({
    rows,
    badRows,
    bytes,
    badRowSamples: samples,
    files,
    elapsedSec: (performance.now() - started) / 1000,
  }, new DepartmentTotals(table));
  table.seal();
  return merged;
}
