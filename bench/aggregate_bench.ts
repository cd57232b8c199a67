/**
 * Throughput and peak memory of `aggregateInputFile` (what the service and a gzip file use) on a generated 10-million-row file, against the
 * aggregator's targets: at least 400 MB/s and a peak RSS of at most 80 MB, not growing with the
 * file's size. In the same rounds, as ratios that hold however busy the machine is:
 * - the aggregator against the floor, a plain loop over the same bytes read the same way;
 * - the file's `.gz` copy against the plain file (`aggregateInputFile`, target at least 0.75);
 * - `--threads 2` against `--threads 1` (`aggregateFileParallel`, target at least 1.6, with a
 *   peak RSS of at most 150 MB);
 * - the machine's ceiling for that (no target): two processes, each aggregating one half of the
 *   file as a worker of `aggregateFileParallel` does (`half` children, the second half starting
 *   just after a line feed), against one such process on the whole file. The children load, say
 *   they are ready, and are released at one moment; each time runs from that release to the
 *   later finish, so no start-up, thread hand-over or merge counts;
 * and the peak RSS of `deno task aggregate` on 1,000,000 distinct departments (at most 200 MB).
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

import { type ChildMode, type ChildReport, DEFAULT_AGGREGATOR_MODULE } from "./_aggregate_child.ts";
import { ensureDepartmentsCsv, ensureGzipCopy } from "./_bench_inputs.ts";
import { type BenchCheck, type BenchContext, type BenchResult, metricOf } from "./_report.ts";
import { type CachedSalesCsv, ensureSalesCsv } from "./generate_sales_csv.ts";

/** Minimum throughput, in MB/s (10^6 bytes per second), on the 10M-row file. */
export const TARGET_MB_PER_SEC = 400;
/** Maximum peak RSS, in MB (10^6 bytes), of the aggregating process. */
export const TARGET_PEAK_RSS_MB = 80;
/** Least speed of a `.gz` file against the same file plain. */
export const TARGET_GZIP_RATIO = 0.75;
/** Least speed of 2 threads against 1. */
export const TARGET_THREADS_RATIO = 1.6;
/** Largest peak RSS on 2 threads, in MB. */
export const TARGET_THREADS_PEAK_RSS_MB = 150;
/** Largest peak RSS of `deno task aggregate` on 1,000,000 departments, in MB. */
export const TARGET_DEPARTMENTS_PEAK_RSS_MB = 200;
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
  const middle = await lineStartAfter(big.path, Math.floor(big.expected.bytes / 2));
  const small = await prepare(smallRows, ctx);
  const gzPath = await ensureGzipCopy(big.path);
  const departmentCount = ctx.quick ? 100_000 : 1_000_000;
  const departmentsPath = await ensureDepartmentsCsv(departmentCount);
  const taskFlags = await aggregateTaskFlags();

  ctx.log(
    `aggregate: 1 run on ${fmtInt(smallRows)} rows, ${runCount} rounds on ${fmtInt(bigRows)}`,
  );
  const smallRun = await runChild(small.path, moduleUrl);
  const bigRuns: ChildReport[] = [];
  const rounds: Round[] = [];
  for (let i = 0; i < runCount; i++) {
    // One round runs every variant back to back, so each ratio compares runs of one moment.
    const run = await runChild(big.path, moduleUrl);
    const round: Round = {
      aggregate: run,
      scan: await runChild(big.path, moduleUrl, "scan"),
      plainInput: await runChild(big.path, moduleUrl, "input"),
      gzipInput: await runChild(gzPath, moduleUrl, "input"),
      oneThread: await runChild(big.path, moduleUrl, "parallel", 1),
      twoThreads: await runChild(big.path, moduleUrl, "parallel", 2),
      oneProcess: await runReleased(big.path, moduleUrl, [0, big.expected.bytes]),
      twoProcesses: await runReleased(big.path, moduleUrl, [0, middle, big.expected.bytes]),
    };
    ctx.log(
      `  round ${i + 1}/${runCount}: ${run.elapsedSec.toFixed(3)} s, ` +
        `${mbPerSec(big.expected.bytes, run).toFixed(1)} MB/s, peak RSS ${
          mb(run.peakRssBytes).toFixed(1)
        } MB; scan ${round.scan.elapsedSec.toFixed(3)} s; plain ${
          round.plainInput.elapsedSec.toFixed(3)
        } s, gz ${round.gzipInput.elapsedSec.toFixed(3)} s; 1 thread ${
          round.oneThread.elapsedSec.toFixed(3)
        } s, 2 threads ${round.twoThreads.elapsedSec.toFixed(3)} s (peak RSS ${
          mb(round.twoThreads.peakRssBytes).toFixed(1)
        } MB); ceiling: 1 process ${round.oneProcess.elapsedSec.toFixed(3)} s, 2 processes ${
          round.twoProcesses.elapsedSec.toFixed(3)
        } s`,
    );
    bigRuns.push(run);
    rounds.push(round);
  }
  const departmentRuns: ChildReport[] = [];
  for (let i = 0; i < 2; i++) {
    const run = await runChild(departmentsPath, moduleUrl, "cli", navigator.hardwareConcurrency, [
      ...taskFlags,
    ]);
    ctx.log(
      `  deno task aggregate, ${fmtInt(departmentCount)} departments, ` +
        `${navigator.hardwareConcurrency} threads: ${run.elapsedSec.toFixed(2)} s, peak RSS ${
          mb(run.peakRssBytes).toFixed(1)
        } MB`,
    );
    departmentRuns.push(run);
  }

  const bytes = big.expected.bytes;
  const rates = bigRuns.map((r) => mbPerSec(bytes, r));
  const peaks = bigRuns.map((r) => mb(r.peakRssBytes));
  // Each ratio: per round (median and spread shown), and of the best times of the rounds (checked).
  const ratio = (faster: keyof Round, slower: keyof Round) => ({
    perRound: rounds.map((r) => r[slower].elapsedSec / r[faster].elapsedSec),
    ofBest: best(rounds, slower) / best(rounds, faster),
  });
  const floor = ratio("aggregate", "scan");
  const gzip = ratio("gzipInput", "plainInput");
  const threads = ratio("twoThreads", "oneThread");
  const ceiling = ratio("twoProcesses", "oneProcess");
  const threadsPeak = Math.max(...rounds.map((r) => mb(r.twoThreads.peakRssBytes)));
  const departmentsPeak = Math.max(...departmentRuns.map((r) => mb(r.peakRssBytes)));
  const metrics = [
    metricOf("throughput", "MB/s", rates, true),
    metricOf("throughput", "MiB/s", bigRuns.map((r) => bytes / 2 ** 20 / r.elapsedSec), true),
    metricOf("rows/s", "M rows/s", bigRuns.map((r) => r.rows / 1e6 / r.elapsedSec), true, 2),
    metricOf("elapsed", "s", bigRuns.map((r) => r.elapsedSec), false, 3),
    metricOf("peak RSS", "MB", peaks, false),
    metricOf("peak RSS before input", "MB", bigRuns.map((r) => mb(r.baselinePeakRssBytes)), false),
    metricOf("floor: byte-scan loop", "MB/s", rounds.map((r) => mbPerSec(bytes, r.scan)), true),
    metricOf("aggregate / byte-scan speed", "x", floor.perRound, true, 2),
    metricOf(".gz / plain speed (aggregateInputFile)", "x", gzip.perRound, true, 2),
    metricOf("2 threads / 1 thread speed", "x", threads.perRound, true, 2),
    metricOf("ceiling: 2 processes on halves / 1 process", "x", ceiling.perRound, true, 2),
    metricOf("2 threads: peak RSS", "MB", rounds.map((r) => mb(r.twoThreads.peakRssBytes)), false),
    metricOf(
      `deno task aggregate, ${fmtInt(departmentCount)} departments: peak RSS`,
      "MB",
      departmentRuns.map((r) => mb(r.peakRssBytes)),
      false,
    ),
  ];

  const bestRate = Math.max(...rates);
  const worstPeak = Math.max(...peaks);
  const smallPeak = mb(smallRun.peakRssBytes);
  const mismatches = [
    ...compare(smallRun, small).map((m) => `${fmtInt(smallRows)} rows: ${m}`),
    ...bigRuns.flatMap((run, i) => compare(run, big).map((m) => `run ${i + 1}: ${m}`)),
    ...rounds.flatMap((round, i) => [
      ...compare(round.plainInput, big).map((m) => `round ${i + 1} plain input: ${m}`),
      ...compare(round.gzipInput, big).map((m) => `round ${i + 1} gz: ${m}`),
      ...compare(round.oneThread, big).map((m) => `round ${i + 1} 1 thread: ${m}`),
      ...compare(round.twoThreads, big).map((m) => `round ${i + 1} 2 threads: ${m}`),
    ]),
    ...departmentRuns.filter((run) => run.bytes === 0).map(() => "departments run failed"),
  ];
  // Kept out of the check above, whose run count they are not part of: a wrong split fails here.
  const ceilingMismatches = rounds.flatMap((round, i) => [
    ...compare(round.oneProcess, big).map((m) => `round ${i + 1} 1 process: ${m}`),
    ...compare(round.twoProcesses, big).map((m) => `round ${i + 1} 2 processes: ${m}`),
  ]);
  const ratioDetail = (r: { perRound: number[]; ofBest: number }) =>
    `${r.ofBest.toFixed(2)}x of the best times; per round ${
      r.perRound.map((x) => x.toFixed(2)).join(", ")
    }`;
  const checks: BenchCheck[] = [
    {
      name: "result matches the generator's expected totals",
      pass: mismatches.length === 0,
      detail: mismatches.length === 0
        ? `${1 + runCount * 5} runs (plain, gz, 1 and 2 threads): rows, bad rows, departments and ${
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
    {
      name: "aggregate speed against the byte-scan floor (no target)",
      pass: true,
      detail: ratioDetail(floor),
    },
    {
      name: `.gz >= ${TARGET_GZIP_RATIO}x the plain file's speed`,
      pass: gzip.ofBest >= TARGET_GZIP_RATIO,
      detail: ratioDetail(gzip),
    },
    {
      name: `2 threads >= ${TARGET_THREADS_RATIO}x 1 thread`,
      pass: threads.ofBest >= TARGET_THREADS_RATIO,
      detail: `${ratioDetail(threads)}; the machine's ceiling in the same rounds: ${
        ceiling.ofBest.toFixed(2)
      }x (2 processes on halves / 1 process)`,
    },
    {
      name: "ceiling: 2 processes on halves against 1 process (no target)",
      pass: ceilingMismatches.length === 0,
      detail: ceilingMismatches.length === 0
        ? `${ratioDetail(ceiling)}; best ${best(rounds, "oneProcess").toFixed(3)} s and ${
          best(rounds, "twoProcesses").toFixed(3)
        } s from release to the later finish; halves cut at byte ${fmtInt(middle)}, results match`
        : ceilingMismatches.slice(0, 5).join("; "),
    },
    {
      name: `2 threads: peak RSS <= ${TARGET_THREADS_PEAK_RSS_MB} MB`,
      pass: threadsPeak <= TARGET_THREADS_PEAK_RSS_MB,
      detail: `${threadsPeak.toFixed(1)} MB worst of ${runCount}`,
    },
    {
      name: `deno task aggregate, ${
        fmtInt(departmentCount)
      } departments: peak RSS <= ${TARGET_DEPARTMENTS_PEAK_RSS_MB} MB`,
      pass: departmentsPeak <= TARGET_DEPARTMENTS_PEAK_RSS_MB,
      detail: `${
        departmentsPeak.toFixed(1)
      } MB worst of ${departmentRuns.length}, ${navigator.hardwareConcurrency} threads`,
    },
  ];

  const withoutTotals = ({ totals: _, ...run }: ChildReport) => run;
  return {
    name: "aggregate",
    description: `aggregateInputFile on ${fmtInt(bigRows)} rows (${
      (bytes / 1e6).toFixed(1)
    } MB), ${runCount} rounds of every variant, each run in a fresh process`,
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
      rounds: rounds.map((round) =>
        Object.fromEntries(Object.entries(round).map(([name, run]) => [name, withoutTotals(run)]))
      ),
      departments: { path: departmentsPath, runs: departmentRuns.map(withoutTotals) },
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

/** One run of every variant, back to back. */
interface Round {
  aggregate: ChildReport;
  scan: ChildReport;
  plainInput: ChildReport;
  gzipInput: ChildReport;
  oneThread: ChildReport;
  twoThreads: ChildReport;
  /** One `half` child on the whole file: elapsed from its release to its finish. */
  oneProcess: ChildReport;
  /** Two `half` children, one per half, released together: elapsed to the later finish. */
  twoProcesses: ChildReport;
}

function best(rounds: Round[], variant: keyof Round): number {
  return Math.min(...rounds.map((round) => round[variant].elapsedSec));
}

/** The `--v8-flags` of `deno task aggregate`, so the memory measured is the task's. */
async function aggregateTaskFlags(): Promise<string[]> {
  const deno = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  return (deno.tasks.aggregate as string).split(/\s+/).filter((arg) =>
    arg.startsWith("--v8-flags")
  );
}

async function runChild(
  path: string,
  moduleUrl: string,
  mode: ChildMode = "aggregate",
  threads = 1,
  flags: string[] = [],
): Promise<ChildReport> {
  const output = await new Deno.Command(Deno.execPath(), {
    // --allow-all: Deno lets a process read its own /proc/self/status only with it.
    args: [
      "run",
      "--quiet",
      "--allow-all",
      ...flags,
      CHILD.href,
      path,
      moduleUrl,
      mode,
      String(threads),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  if (!output.success) {
    throw new Error(`Aggregator child failed with exit code ${output.code} on ${path} (${mode})`);
  }
  const last = stdout.slice(stdout.lastIndexOf("\n") + 1);
  return JSON.parse(last) as ChildReport;
}

/**
 * Runs one `half` child per range (`bounds` are the cuts, first to last byte), releases them all
 * at one moment once every one is loaded, and reports them as one run: the elapsed time from the
 * release to the last finish, the counts and totals added up, the highest peak RSS.
 */
async function runReleased(
  path: string,
  moduleUrl: string,
  bounds: number[],
): Promise<AddedUpReport> {
  const children = bounds.slice(1).map((end, i) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-all",
        CHILD.href,
        path,
        moduleUrl,
        "half",
        "1",
        String(bounds[i]),
        String(end),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn()
  );
  const outputs = children.map((child) => readLines(child.stdout));
  let releasedAtMs = 0;
  try {
    const firstLines = await Promise.all(outputs.map((output) => output.next()));
    if (firstLines.some((line) => line.value !== "ready")) {
      throw new Error(`Aggregator child did not say ready on ${path} (half)`);
    }
    releasedAtMs = performance.timeOrigin + performance.now();
  } finally {
    // The release, or on a failure the end of stdin, which stops a child still waiting.
    await Promise.all(children.map(async (child) => {
      const writer = child.stdin.getWriter();
      if (releasedAtMs > 0) await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
    }));
  }
  const reports = await Promise.all(outputs.map(async (output, i) => {
    let last = "";
    for await (const line of output) last = line;
    const status = await children[i].status;
    if (!status.success) {
      throw new Error(`Aggregator child failed with exit code ${status.code} on ${path} (half)`);
    }
    return JSON.parse(last) as ChildReport;
  }));
  return addedUp(reports, (Math.max(...reports.map((r) => r.finishedAtMs!)) - releasedAtMs) / 1000);
}

/** The lines a child prints, as they come. */
async function* readLines(stdout: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const bytes of stdout) {
    pending += decoder.decode(bytes, { stream: true });
    let lineFeed;
    while ((lineFeed = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, lineFeed);
      pending = pending.slice(lineFeed + 1);
    }
  }
  if (pending) yield pending;
}

/** Child runs on parts of one file added up; `partsElapsedSec` shows how evenly they ended. */
type AddedUpReport = ChildReport & { partsElapsedSec: number[] };

/** The reports of the parts of one file as one report, taking `elapsedSec` as given. */
function addedUp(parts: ChildReport[], elapsedSec: number): AddedUpReport {
  const totals = new Map<string, bigint>();
  for (const part of parts) {
    for (const [name, total] of Object.entries(part.totals)) {
      totals.set(name, (totals.get(name) ?? 0n) + BigInt(total));
    }
  }
  const sum = (key: "bytes" | "rows" | "badRows") => parts.reduce((n, part) => n + part[key], 0);
  const highest = (key: "peakRssBytes" | "baselinePeakRssBytes" | "endRssBytes") =>
    parts.some((part) => part[key] === null) ? null : Math.max(...parts.map((part) => part[key]!));
  return {
    elapsedSec,
    aggregatorElapsedSec: Math.max(...parts.map((part) => part.aggregatorElapsedSec)),
    bytes: sum("bytes"),
    rows: sum("rows"),
    badRows: sum("badRows"),
    departments: totals.size,
    peakRssBytes: highest("peakRssBytes"),
    baselinePeakRssBytes: highest("baselinePeakRssBytes"),
    endRssBytes: highest("endRssBytes"),
    totals: Object.fromEntries(
      [...totals.keys()].sort(byCodePoint).map((name) => [name, String(totals.get(name))]),
    ),
    releasedAtMs: Math.min(...parts.map((part) => part.releasedAtMs!)),
    finishedAtMs: Math.max(...parts.map((part) => part.finishedAtMs!)),
    partsElapsedSec: parts.map((part) => part.elapsedSec),
  };
}

/** Orders strings by code point, as the aggregator orders departments (not by UTF-16 unit). */
function byCodePoint(a: string, b: string): number {
  const left = [...a];
  const right = [...b];
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const difference = left[i].codePointAt(0)! - right[i].codePointAt(0)!;
    if (difference !== 0) return difference;
  }
  return left.length - right.length;
}

/** The first byte after the first line feed at or after `from`: where the product cuts a file. */
async function lineStartAfter(path: string, from: number): Promise<number> {
  using file = await Deno.open(path, { read: true });
  await file.seek(from, Deno.SeekMode.Start);
  const window = new Uint8Array(64 * 1024);
  const length = await file.read(window) ?? 0;
  const lineFeed = window.subarray(0, length).indexOf(0x0a);
  if (lineFeed < 0) throw new Error(`No line feed in the 64 KiB after byte ${from} of ${path}`);
  return from + lineFeed + 1;
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

if (import.meta.main) {
  const { runAsScript } = await import("./_report.ts");
  await runAsScript(aggregateBench);
}
