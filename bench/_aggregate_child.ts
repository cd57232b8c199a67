/**
 * One measured aggregation, run in its own process by `aggregate_bench.ts` so that the peak RSS
 * it reports belongs to this run alone.
 *
 * Usage: `deno run --allow-all bench/_aggregate_child.ts <file.csv> [aggregator module URL]`.
 * Prints one JSON line ({@linkcode ChildReport}) to stdout.
 *
 * @module
 */

import { currentRssBytes, peakRssBytes } from "./_rss.ts";

/** What one child run reports. */
export interface ChildReport {
  elapsedSec: number;
  /** The aggregator's own elapsed time, as it reports it. */
  aggregatorElapsedSec: number;
  bytes: number;
  rows: number;
  badRows: number;
  departments: number;
  /** VmHWM after the run, in bytes: the figure the target is about. */
  peakRssBytes: number | null;
  /** VmHWM once the runtime and the aggregator module are loaded, before any input is read. */
  baselinePeakRssBytes: number | null;
  /** VmRSS after the run. */
  endRssBytes: number | null;
  /** Department -> exact total as a decimal string. */
  totals: Record<string, string>;
}

/** The aggregator module under test, unless the parent names another one. */
export const DEFAULT_AGGREGATOR_MODULE = new URL(
  "../server/aggregate/sales_aggregator.ts",
  import.meta.url,
).href;

async function main(args: string[]): Promise<void> {
  const [path, moduleUrl = DEFAULT_AGGREGATOR_MODULE] = args;
  if (!path) throw new Error("Usage: _aggregate_child.ts <file.csv> [aggregator module URL]");
  const aggregator: typeof import("../server/aggregate/sales_aggregator.ts") = await import(
    moduleUrl
  );
  const baselinePeakRssBytes = peakRssBytes();
  const started = performance.now();
  const result = await aggregator.aggregateFile(path);
  const elapsedSec = (performance.now() - started) / 1000;
  const report: ChildReport = {
    elapsedSec,
    aggregatorElapsedSec: result.elapsedSec,
    bytes: result.bytes,
    rows: result.rows,
    badRows: result.badRows,
    departments: result.departments,
    peakRssBytes: peakRssBytes(),
    baselinePeakRssBytes,
    endRssBytes: currentRssBytes(),
    totals: Object.fromEntries([...result.totals].map(([name, total]) => [name, String(total)])),
  };
  console.log(JSON.stringify(report));
}

if (import.meta.main) await main(Deno.args);
