/**
 * Throughput and peak memory of `aggregateFile` on a generated 10-million-row file, against the
 * targets of issue 2: at least 400 MB/s and a peak RSS of at most 80 MB, not growing with the
 * file's size.
 *
 * Each run is a fresh `deno run` child process (`_aggregate_child.ts`), so its peak RSS (VmHWM)
 * is the aggregation's own and no JIT or heap state carries over between runs. The files are read
 * once before measuring so every run starts from the page cache. Every run's result is compared
 * with the totals the generator computed, so a fast but wrong aggregator fails too.
 *
 * Set `BENCH_AGGREGATOR_MODULE` to a module path or URL to measure another implementation of the
 * same API (say, an experiment next to the current one).
 *
 * @module
 */

import { type ChildReport, DEFAULT_AGGREGATOR_MODULE } from "./_aggregate_child.ts";
import { type BenchCheck, type BenchContext, type BenchResult, metricOf } from "./_report.ts";
import { type CachedSalesCsv, ensureSalesCsv } from "./generate_sales_csv.ts";

/** Minimum throughput, in MB/s (10^6 bytes per second), on the 10M-row file. */
export const TARGET_MB_PER_SEC = 400;
/** Maximum peak RSS, in MB (10^6 bytes), of the aggregating process. */
export const TARGET_PEAK_RSS_MB = 80;
/** How much more the large file may peak than the one a quarter its size: GC timing, not growth. */
const RSS_GROWTH_SLACK_MB = 8;

const CHILD = new URL("./_aggregate_child.ts", import.meta.url);

/** Runs the aggregator benchmark; see the module doc. */
export async function aggregateBench(ctx: BenchContext): Promise<BenchResult> {
  const bigRows = ctx.quick ? 1_000_000 : 10_000_000;
  const smallRows = bigRows / 4;
  const runCount = 3;
  const moduleUrl = aggregatorModule();

  const big = await prepare(bigRows, ctx);
  const small = await prepare(smallRows, ctx);

  ctx.log(`aggregate: 1 run on ${fmtInt(smallRows)} rows, ${runCount} on ${fmtInt(bigRows)} rows`);
  const smallRun = await runChild(small.path, moduleUrl);
  const bigRuns: ChildReport[] = [];
  for (let i = 0; i < runCount; i++) {
    const run = await runChild(big.path, moduleUrl);
    ctx.log(
      `  run ${i + 1}/${runCount}: ${run.elapsedSec.toFixed(3)} s, ` +
        `${mbPerSec(big.expected.bytes, run).toFixed(1)} MB/s, peak RSS ${
          mb(run.peakRssBytes).toFixed(1)
        } MB`,
    );
    bigRuns.push(run);
  }

  const bytes = big.expected.bytes;
  const rates = bigRuns.map((r) => mbPerSec(bytes, r));
  const peaks = bigRuns.map((r) => mb(r.peakRssBytes));
  const metrics = [
    metricOf("throughput", "MB/s", rates, true),
    metricOf("throughput", "MiB/s", bigRuns.map((r) => bytes / 2 ** 20 / r.elapsedSec), true),
    metricOf("rows/s", "M rows/s", bigRuns.map((r) => r.rows / 1e6 / r.elapsedSec), true, 2),
    metricOf("elapsed", "s", bigRuns.map((r) => r.elapsedSec), false, 3),
    metricOf("peak RSS", "MB", peaks, false),
    metricOf("peak RSS before input", "MB", bigRuns.map((r) => mb(r.baselinePeakRssBytes)), false),
  ];

  const bestRate = Math.max(...rates);
  const worstPeak = Math.max(...peaks);
  const smallPeak = mb(smallRun.peakRssBytes);
  const mismatches = [
    ...compare(smallRun, small).map((m) => `${fmtInt(smallRows)} rows: ${m}`),
    ...bigRuns.flatMap((run, i) => compare(run, big).map((m) => `run ${i + 1}: ${m}`)),
  ];
  const checks: BenchCheck[] = [
    {
      name: "result matches the generator's expected totals",
      pass: mismatches.length === 0,
      detail: mismatches.length === 0
        ? `${runCount + 1} runs: rows, bad rows, departments and ${
          Object.keys(big.expected.totals).length
        } totals`
        : mismatches.slice(0, 5).join("; "),
    },
    {
      name: `throughput >= ${TARGET_MB_PER_SEC} MB/s`,
      pass: bestRate >= TARGET_MB_PER_SEC,
      detail: `${bestRate.toFixed(1)} MB/s best of ${runCount}, median ${
        metrics[0].median.toFixed(1)
      }`,
    },
    {
      name: `peak RSS <= ${TARGET_PEAK_RSS_MB} MB`,
      pass: worstPeak <= TARGET_PEAK_RSS_MB,
      detail: `${worstPeak.toFixed(1)} MB worst of ${runCount}`,
    },
    {
      name: "peak RSS does not grow with file size",
      pass: worstPeak - smallPeak <= Math.max(RSS_GROWTH_SLACK_MB, smallPeak * 0.1),
      detail: `${fmtInt(smallRows)} rows (${(small.expected.bytes / 1e6).toFixed(0)} MB): ${
        smallPeak.toFixed(1)
      } MB, ${fmtInt(bigRows)} rows (${(bytes / 1e6).toFixed(0)} MB): ${
        worstPeak.toFixed(1)
      } MB worst`,
    },
  ];

  const withoutTotals = ({ totals: _, ...run }: ChildReport) => run;
  return {
    name: "aggregate",
    description: `aggregateFile on ${fmtInt(bigRows)} rows (${
      (bytes / 1e6).toFixed(1)
    } MB), ${runCount} runs, each in a fresh process`,
    metrics,
    checks,
    runs: {
      aggregatorModule: moduleUrl,
      large: { path: big.path, rows: bigRows, bytes, runs: bigRuns.map(withoutTotals) },
      small: {
        path: small.path,
        rows: smallRows,
        bytes: small.expected.bytes,
        runs: [withoutTotals(smallRun)],
      },
    },
  };
}

function aggregatorModule(): string {
  const override = Deno.env.get("BENCH_AGGREGATOR_MODULE");
  if (!override) return DEFAULT_AGGREGATOR_MODULE;
  return URL.canParse(override) && !/^[a-z]:/i.test(override)
    ? override
    : new URL(override, `file://${Deno.cwd()}/`).href;
}

/** Generates or reuses the input, then reads it once so every run starts from the page cache. */
async function prepare(rows: number, ctx: BenchContext): Promise<CachedSalesCsv> {
  const file = await ensureSalesCsv(rows);
  ctx.log(
    file.generated
      ? `generated ${file.path} (${fmtInt(rows)} rows) in ${file.generateSec.toFixed(1)} s`
      : `using cached ${file.path}`,
  );
  using handle = await Deno.open(file.path);
  const buffer = new Uint8Array(1 << 20);
  while (await handle.read(buffer) !== null) {
    // Reading is the point.
  }
  return file;
}

async function runChild(path: string, moduleUrl: string): Promise<ChildReport> {
  const output = await new Deno.Command(Deno.execPath(), {
    // --allow-all: Deno lets a process read its own /proc/self/status only with it.
    args: ["run", "--quiet", "--allow-all", CHILD.href, path, moduleUrl],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  if (!output.success) {
    throw new Error(`Aggregator child failed with exit code ${output.code} on ${path}`);
  }
  const last = stdout.slice(stdout.lastIndexOf("\n") + 1);
  return JSON.parse(last) as ChildReport;
}

/** Differences between a run and the generator's expected result, as short messages. */
function compare(run: ChildReport, file: CachedSalesCsv): string[] {
  const want = file.expected;
  const problems: string[] = [];
  for (const key of ["rows", "badRows", "departments", "bytes"] as const) {
    if (run[key] !== want[key]) problems.push(`${key} ${run[key]}, expected ${want[key]}`);
  }
  const names = new Set([...Object.keys(run.totals), ...Object.keys(want.totals)]);
  for (const name of names) {
    if (run.totals[name] !== want.totals[name]) {
      problems.push(
        `total of ${JSON.stringify(name)} ${run.totals[name]}, expected ${want.totals[name]}`,
      );
    }
  }
  const order = Object.keys(run.totals).join("\n");
  if (problems.length === 0 && order !== Object.keys(want.totals).join("\n")) {
    problems.push("departments are not in code point order");
  }
  return problems;
}

function mbPerSec(bytes: number, run: ChildReport): number {
  return bytes / 1e6 / run.elapsedSec;
}

function mb(bytes: number | null): number {
  return bytes === null ? NaN : bytes / 1e6;
}

function fmtInt(n: number): string {
  return n.toLocaleString("en-US");
}
