/**
 * One measured aggregation, run in its own process by `aggregate_bench.ts` so that the peak RSS
 * it reports belongs to this run alone.
 *
 * Usage: `deno run --allow-all bench/_aggregate_child.ts <file.csv> [aggregator module URL] [mode]
 * [threads] [start end]`. Prints one JSON line ({@linkcode ChildReport}) to stdout. Modes
 * ({@linkcode ChildMode}): `aggregate` (the module's `aggregateInputFile`, the default), `scan` (the
 * floor: a plain loop over the same bytes, read the same way, counting LFs), `input`
 * (`aggregateInputFile`, plain or gzip), `parallel` (`aggregateFileParallel` on `threads`
 * threads), `cli` (`deno task aggregate`'s `main` with `--threads`, result CSV written), and
 * `half` (bytes `[start, end)` only, with the product's `SalesAggregator` and `readFileRange`, as
 * one worker of `aggregateFileParallel` reads its part; `start` must follow a line feed). A `half`
 * child prints `ready` once loaded and starts only when a line arrives on stdin, so the parent can
 * release several at one moment; its times count from that line.
 *
 * @module
 */

import { readFileChunks, readFileRange } from "../server/aggregate/_read_file.ts";
import { aggregateFileParallel } from "../server/aggregate/parallel_aggregate.ts";
import { SalesAggregator } from "../server/aggregate/sales_aggregator.ts";
import { aggregateInputFile } from "../server/aggregate/sales_input.ts";
import { main as aggregateCli } from "../server/cli/aggregate.ts";
import { currentRssBytes, peakRssBytes } from "./_rss.ts";

/** What a child run measures; see the module doc. */
export type ChildMode = "aggregate" | "scan" | "input" | "parallel" | "cli" | "half";

/** The counts a run reports when it does not aggregate (`scan`, `cli`). */
interface Counts {
  elapsedSec: number;
  bytes: number;
  rows: number;
  badRows: number;
  departments: number;
  totals: Map<string, bigint>;
}

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
  /** `half` only: when the release line arrived, in ms since the epoch (same clock in all). */
  releasedAtMs?: number;
  /** `half` only: when the aggregation finished, in ms since the epoch. */
  finishedAtMs?: number;
}

/** The aggregator module under test, unless the parent names another one. */
export const DEFAULT_AGGREGATOR_MODULE = new URL(
  "../server/aggregate/sales_input.ts",
  import.meta.url,
).href;

async function main(args: string[]): Promise<void> {
  const [path, module = "", mode = "aggregate", threads = "1", start = "", end = ""] = args;
  const moduleUrl = module || DEFAULT_AGGREGATOR_MODULE;
  if (!path || (mode === "half" && !(Number(start) >= 0 && Number(end) >= Number(start)))) {
    throw new Error(
      "Usage: _aggregate_child.ts <file.csv> [aggregator module URL] [mode] [threads] [start end]",
    );
  }
  const aggregator: typeof import("../server/aggregate/sales_input.ts") = await import(
    moduleUrl
  );
  const range = mode === "half" ? await openRange(path, Number(start), Number(end)) : undefined;
  const baselinePeakRssBytes = peakRssBytes();
  if (range) {
    console.log("ready");
    await waitForLine();
  }
  const releasedAtMs = performance.timeOrigin + performance.now();
  const started = performance.now();
  const result = range
    ? await range.aggregate()
    : await run(mode as ChildMode, path, aggregator, Number(threads));
  const elapsedSec = (performance.now() - started) / 1000;
  const finishedAtMs = performance.timeOrigin + performance.now();
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
    // A million departments stay out of the report: only the memory is measured then.
    totals: result.departments > 10_000
      ? {}
      : Object.fromEntries([...result.totals].map(([name, total]) => [name, String(total)])),
    ...(range ? { releasedAtMs, finishedAtMs } : {}),
  };
  console.log(JSON.stringify(report));
}

/** A byte range of the file, opened before the release so that only the aggregation is timed. */
async function openRange(
  path: string,
  start: number,
  end: number,
): Promise<{ aggregate(): Promise<Counts> }> {
  const file = await Deno.open(path, { read: true });
  return {
    async aggregate() {
      try {
        // What a worker of aggregateFileParallel does with its part (_aggregate_worker.ts).
        const aggregator = new SalesAggregator({ midFile: start > 0 });
        await readFileRange(file, start, end, (chunk) => aggregator.push(chunk));
        return aggregator.finish();
      } finally {
        file.close();
      }
    },
  };
}

/** Resolves when a line feed arrives on stdin: the parent's release. */
async function waitForLine(): Promise<void> {
  const buffer = new Uint8Array(64);
  for (;;) {
    const length = await Deno.stdin.read(buffer);
    if (length === null) throw new Error("Stdin closed before the release line of a half run");
    if (buffer.subarray(0, length).includes(0x0a)) return;
  }
}

async function run(
  mode: ChildMode,
  path: string,
  aggregator: typeof import("../server/aggregate/sales_input.ts"),
  threads: number,
): Promise<Counts> {
  switch (mode) {
    case "aggregate":
      return await aggregator.aggregateInputFile(path);
    case "input":
      return await aggregateInputFile(path);
    case "parallel":
      return await aggregateFileParallel(path, { threads });
    case "scan": {
      const started = performance.now();
      let bytes = 0;
      let lineFeeds = 0;
      await readFileChunks(path, (chunk) => {
        bytes += chunk.length;
        for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x0a) lineFeeds++;
      });
      const elapsedSec = (performance.now() - started) / 1000;
      return { elapsedSec, bytes, rows: lineFeeds, badRows: 0, departments: 0, totals: new Map() };
    }
    case "cli": {
      const started = performance.now();
      const out = await Deno.makeTempFile({ suffix: ".result.csv" });
      try {
        const code = await aggregateCli([path, "--threads", String(threads), "--out", out]);
        if (code !== 0) throw new Error(`deno task aggregate exited with ${code}`);
        const bytes = (await Deno.stat(path)).size;
        const elapsedSec = (performance.now() - started) / 1000;
        return { elapsedSec, bytes, rows: 0, badRows: 0, departments: 0, totals: new Map() };
      } finally {
        await Deno.remove(out).catch(() => {});
      }
    }
    case "half":
      throw new Error("A half run is aggregated by openRange");
  }
}

if (import.meta.main) {
  await main(Deno.args);
  // At once: the gzip inflate worker would otherwise keep the process for its idle time.
  Deno.exit(0);
}
