/**
 * Browser upload benchmark: headless Chromium uploads a generated 256 MiB CSV through the page's
 * upload island (resumable chunked RPCs over gRPC-Web) to the web handler with the real service,
 * running in a separate Deno process so its memory is its own. Reports MB/s end to end (click to
 * results shown) and the memory of the server process (RSS) and of Chromium's processes (PSS),
 * sampled before and during the upload. "Flat" compares the peaks of the upload's two halves (a
 * warm-up upload a tenth the size runs first; its figures are reported too).
 *
 * The same file is then uploaded with the page's "Compress before sending" on, on loopback and
 * with Chromium's network throttled to {@linkcode THROTTLED_BYTES_PER_SEC} up (DevTools
 * `Network.emulateNetworkConditions`, which also applies to the page's gRPC-Web fetches: the
 * uncompressed throttled run shows it), and uncompressed on the throttled link, all in one run.
 * The page compresses only when its first chunk shows the link slower than its compressors, so
 * on loopback "compressed" measures what that choice costs.
 *
 * Each upload also reports the CPU seconds of Chromium, of the server, of this process and of the
 * rest of the machine, and a trace of its AppendUpload requests and compression jobs (recorded by
 * a script the page runs first; `runs` in the results file holds every request and job).
 * `BROWSER_UPLOAD_BENCH_ONLY=throttled` runs only the warm-up and the two throttled uploads.
 *
 * Run alone with `deno run -A bench/browser_upload_bench.ts [--quick]`, or via `deno task bench`.
 * With `--serve`, the module is the server process instead: it prints `{"port":N}` and serves until
 * its stdin closes, then prints `{"peakRssBytes":N}`.
 *
 * @module
 */

import type { BenchCheck, BenchContext, BenchMetric, BenchResult } from "./_report.ts";
import { ensureSalesCsv } from "./generate_sales_csv.ts";
import { startTaskArgs } from "./upload_bench.ts";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../server/web/_test_chromium.ts";

/** Minimum throughput, in MB/s, of a 256 MiB upload through the page (docs/performance.md). */
export const TARGET_MB_PER_SEC = 50;
/** The second half of the upload may peak this much (or 10%) above the first: GC timing. */
export const SERVER_FLAT_SLACK_MB = 16;
/** Chromium's memory may grow this much: the file must stream from disk, never sit in memory. */
export const BROWSER_GROWTH_LIMIT_MB = 128;

/** A 100 Mbit/s uplink, in bytes per second (DevTools takes bytes per second). */
export const THROTTLED_BYTES_PER_SEC = 12_500_000;
/** Target: on the throttled link, compressed uploads finish at least this many times sooner. */
export const THROTTLED_SPEEDUP_TARGET = 3;
/** Target: on loopback, compressing costs at most this fraction of the uncompressed time. */
export const LOOPBACK_COST_TARGET = 0.2;

/**
 * `BROWSER_UPLOAD_BENCH_ONLY=throttled` runs only the warm-up and the throttled comparison (both
 * throttled uploads), to iterate on compression; the full run's rows are then left out.
 */
const ONLY_ENV = "BROWSER_UPLOAD_BENCH_ONLY";

/** Rows of the generated file: 10,210,000 rows are 268.5 MB, just over 256 MiB. */
const FULL_ROWS = 10_210_000;
const QUICK_ROWS = 1_000_000;

const mb = (bytes: number) => bytes / 1e6;

/** Bytes of a `/proc/<pid>/status` or `smaps_rollup` field given in kB, or 0 when gone. */
function procKb(pid: number, file: "status" | "smaps_rollup", field: string): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/${file}`);
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Pids of every descendant of `root`, from /proc's parent links. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // The command name may hold spaces and parentheses: fields start after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...children.get(ppid) ?? [], Number(entry.name)]);
    } catch {
      // The process ended while we looked.
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.pop()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Samples memory every `intervalMs` until stopped; keeps the peaks, overall and per half. */
function sampleMemory(serverPid: number, intervalMs = 100) {
  const started = performance.now();
  const samples: { at: number; serverRss: number; browserPss: number }[] = [];
  const sample = () => {
    const serverTree = new Set([serverPid, ...descendants(serverPid)]);
    const browser = descendants(Deno.pid).filter((pid) => !serverTree.has(pid));
    samples.push({
      at: performance.now() - started,
      serverRss: procKb(serverPid, "status", "VmRSS"),
      browserPss: browser.reduce((sum, pid) => sum + procKb(pid, "smaps_rollup", "Pss"), 0),
    });
  };
  const peakOf = (part: typeof samples) => ({
    serverRss: Math.max(0, ...part.map((s) => s.serverRss)),
    browserPss: Math.max(0, ...part.map((s) => s.browserPss)),
  });
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    /** Stops sampling; `firstHalf`/`secondHalf` split the time, and so the bytes of a steady upload. */
    stop() {
      clearInterval(timer);
      sample();
      const middle = samples.at(-1)!.at / 2;
      return {
        ...peakOf(samples),
        firstHalf: peakOf(samples.filter((s) => s.at < middle)),
        secondHalf: peakOf(samples.filter((s) => s.at >= middle)),
      };
    },
  };
}

/** CPU seconds (user + system) used so far by `pids`, from /proc; a process gone counts 0. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended while we looked.
    }
  }
  // Linux reports in USER_HZ, 100 on every platform Chromium and Deno ship for.
  return ticks / 100;
}

/** Chromium's name for the kind of process `pid` is (`renderer`, `utility`...), `browser` if none. */
function chromiumProcessType(pid: number): string {
  try {
    // Chromium rewrites its command line: arguments may be separated by spaces, not NULs.
    const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split(/[\0 ]/);
    const type = args.find((arg) => arg.startsWith("--type="))?.slice("--type=".length);
    const service = args.find((arg) => arg.startsWith("--utility-sub-type="))
      ?.slice("--utility-sub-type=".length).split(".")[0];
    return type === undefined ? "browser" : service ? `${type} ${service}` : type;
  } catch {
    return "gone";
  }
}

/** CPU seconds every core spent busy so far (all processes), from /proc/stat. */
function machineBusySeconds(): number {
  const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1);
  // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
  const busy = fields.slice(0, 8).reduce(
    (sum, value, i) => i === 3 || i === 4 ? sum : sum + +value,
    0,
  );
  return busy / 100;
}

/**
 * CPU seconds of the server's process tree, of Chromium's, of this process (playwright, the memory
 * sampler) and of everything else on the machine (other work sharing the cores), since `cpuClock`
 * was called.
 */
function cpuClock(serverPid: number) {
  const read = () => {
    const serverTree = [serverPid, ...descendants(serverPid)];
    const browser = descendants(Deno.pid).filter((pid) => !serverTree.includes(pid));
    const byType = new Map<string, number>();
    for (const pid of browser) {
      const type = chromiumProcessType(pid);
      byType.set(type, (byType.get(type) ?? 0) + cpuSeconds([pid]));
    }
    return {
      server: cpuSeconds(serverTree),
      browser: cpuSeconds(browser),
      byType,
      bench: cpuSeconds([Deno.pid]),
      machine: machineBusySeconds(),
    };
  };
  const start = read();
  return () => {
    const end = read();
    const server = end.server - start.server;
    const browser = end.browser - start.browser;
    const bench = end.bench - start.bench;
    const browserByType: Record<string, number> = {};
    for (const [type, seconds] of end.byType) {
      browserByType[type] = +(seconds - (start.byType.get(type) ?? 0)).toFixed(2);
    }
    return {
      server,
      browser,
      browserByType,
      bench,
      other: end.machine - start.machine - server - browser - bench,
    };
  };
}

/**
 * Runs in the page before its scripts: records when each AppendUpload request starts and is
 * answered (with its body's size), and when each compression job is posted to a worker and
 * answered, into `globalThis.__uploadTrace`. It only observes: the page's code is unchanged.
 */
function installUploadTrace(): void {
  type TraceEvent = { at: number; kind: string; id: number; bytes?: number };
  const events: TraceEvent[] = [];
  // deno-lint-ignore no-explicit-any
  (globalThis as any).__uploadTrace = events;
  const nativeFetch = globalThis.fetch.bind(globalThis);
  let requests = 0;
  globalThis.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (!url.includes("AppendUpload")) return nativeFetch(input, init);
    const id = requests++;
    const body = init?.body;
    events.push({ at: performance.now(), kind: "send", id, bytes: (body as Blob)?.size });
    try {
      return await nativeFetch(input, init);
    } finally {
      events.push({ at: performance.now(), kind: "acked", id });
    }
  };
  const NativeWorker = globalThis.Worker;
  let workers = 0;
  globalThis.Worker = class extends NativeWorker {
    readonly #id = workers++;
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      events.push({ at: performance.now(), kind: "worker", id: this.#id });
      this.addEventListener("message", (event) => {
        const member = (event as MessageEvent).data?.member as Blob | undefined;
        events.push({ at: performance.now(), kind: "deflated", id: this.#id, bytes: member?.size });
      });
    }
    // deno-lint-ignore no-explicit-any
    override postMessage(message: unknown, options?: any) {
      const bytes = message instanceof Blob ? message.size : undefined;
      events.push({ at: performance.now(), kind: "deflate", id: this.#id, bytes });
      super.postMessage(message, options);
    }
  };
}

/** One traced event of {@linkcode installUploadTrace}. */
interface TraceEvent {
  at: number;
  kind: "send" | "acked" | "worker" | "deflate" | "deflated";
  id: number;
  bytes?: number;
}

/** A summary of an upload's trace: where the time went, in seconds from the click. */
function summarizeTrace(events: TraceEvent[], clickAt: number, elapsedSec: number) {
  const sec = (at: number) => (at - clickAt) / 1000;
  const sends = events.filter((e) => e.kind === "send");
  const acks = new Map(events.filter((e) => e.kind === "acked").map((e) => [e.id, e.at]));
  // The link is busy while a request is open; gaps are time with none open.
  let busyMs = 0;
  let gapMs = 0;
  let lastEnd: number | undefined;
  for (const send of sends) {
    const end = acks.get(send.id) ?? send.at;
    busyMs += end - send.at;
    if (lastEnd !== undefined) gapMs += Math.max(0, send.at - lastEnd);
    lastEnd = end;
  }
  const jobs: { worker: number; start: number; end?: number; bytes?: number; out?: number }[] = [];
  const open = new Map<number, (typeof jobs)[number]>();
  for (const event of events) {
    if (event.kind === "deflate") {
      const job = { worker: event.id, start: event.at, bytes: event.bytes };
      jobs.push(job);
      open.set(event.id, job);
    } else if (event.kind === "deflated") {
      const job = open.get(event.id);
      if (job) Object.assign(job, { end: event.at, out: event.bytes });
      open.delete(event.id);
    }
  }
  const done = jobs.filter((job) => job.end !== undefined);
  const deflateMs = done.reduce((sum, job) => sum + job.end! - job.start, 0);
  const deflatedBytes = done.reduce((sum, job) => sum + (job.bytes ?? 0), 0);
  return {
    requests: sends.length,
    firstSendSec: sends.length ? sec(sends[0].at) : undefined,
    firstAckSec: sends.length ? sec(acks.get(sends[0].id) ?? 0) : undefined,
    lastAckSec: sends.length ? sec(acks.get(sends.at(-1)!.id) ?? 0) : undefined,
    linkBusySec: busyMs / 1000,
    gapsBetweenRequestsSec: gapMs / 1000,
    workers: events.filter((e) => e.kind === "worker").length,
    deflateJobs: jobs.length,
    firstDeflateSec: jobs.length ? sec(jobs[0].start) : undefined,
    firstDeflatedSec: done.length ? sec(done[0].end!) : undefined,
    lastDeflatedSec: done.length ? sec(done.at(-1)!.end!) : undefined,
    deflateMBPerSecPerJob: deflateMs > 0 ? deflatedBytes / 1000 / deflateMs : undefined,
    meanWireBytesPerRequest: sends.reduce((sum, e) => sum + (e.bytes ?? 0), 0) / sends.length,
    elapsedSec,
    timeline: sends.map((send) => [
      +sec(send.at).toFixed(2),
      +((acks.get(send.id) ?? send.at) - send.at).toFixed(0),
      send.bytes,
    ]),
    jobs: done.map((job) => [
      job.worker,
      +sec(job.start).toFixed(2),
      +(job.end! - job.start).toFixed(0),
      job.bytes,
      job.out,
    ]),
  };
}

/** Starts the server process and returns its port and a way to stop it (with its peak RSS). */
async function startServer() {
  const v8Flags = (await startTaskArgs()).filter((arg) => arg.startsWith("--v8-flags"));
  const child = new Deno.Command(Deno.execPath(), {
    // The same V8 flags as `deno task start`, so the server's memory is the production figure.
    args: ["run", ...v8Flags, "--allow-all", import.meta.filename!, "--serve"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextLine = async () => {
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("The benchmark server exited early");
      buffered += value;
    }
    const line = buffered.slice(0, buffered.indexOf("\n"));
    buffered = buffered.slice(line.length + 1);
    return JSON.parse(line);
  };
  const { port } = await nextLine();
  const writer = child.stdin.getWriter();
  return {
    pid: child.pid,
    port: port as number,
    async stop(): Promise<number> {
      await writer.close();
      const { peakRssBytes } = await nextLine();
      await child.status;
      return peakRssBytes as number;
    },
  };
}

/** Peak server RSS and Chromium PSS, in bytes. */
interface MemoryPeaks {
  serverRss: number;
  browserPss: number;
}

/** One upload through the page: speed, what the page showed, and memory around it. */
interface UploadRun {
  label: string;
  compress: boolean;
  throttled: boolean;
  rows: number;
  bytes: number;
  /** Bytes that went over the wire (the gzip stream when compressed). */
  wireBytes: number;
  elapsedSec: number;
  mbPerSec: number;
  shownMatchesExpected: boolean;
  shown: number[];
  expected: number[];
  idle: MemoryPeaks;
  peak: MemoryPeaks & { firstHalf: MemoryPeaks; secondHalf: MemoryPeaks };
  /** CPU seconds the server's processes and Chromium's used from the click to the results. */
  cpuSec: {
    server: number;
    browser: number;
    browserByType: Record<string, number>;
    bench: number;
    other: number;
  };
  /** When requests and compression jobs ran: see {@linkcode summarizeTrace}. */
  trace: ReturnType<typeof summarizeTrace>;
}

/**
 * Runs the benchmark: a warm-up upload of a file a tenth the size, then the 256 MiB one, in one
 * browser against one server process, so "memory flat" compares peaks across file sizes.
 */
export async function browserUploadBench(
  ctx: BenchContext = { quick: false, log: (line) => console.error(line) },
): Promise<BenchResult> {
  const bigRows = ctx.quick ? QUICK_ROWS : FULL_ROWS;
  const bigFile = await ensureSalesCsv(bigRows);
  // A small upload, then the big one twice: the first big upload takes the server's heap to its
  // steady size, the second is the one measured, so "flat" compares steady state, not the ramp.
  // Then the big one compressed, and both ways on the throttled link.
  const smallFile = await ensureSalesCsv(Math.round(bigRows / 10));
  const allPlans = [
    { label: "warm-up", csv: smallFile, compress: false, throttled: false },
    { label: "ramp", csv: bigFile, compress: false, throttled: false },
    { label: "loopback", csv: bigFile, compress: false, throttled: false },
    { label: "loopback compressed", csv: bigFile, compress: true, throttled: false },
    { label: "throttled compressed", csv: bigFile, compress: true, throttled: true },
    { label: "throttled", csv: bigFile, compress: false, throttled: true },
  ];
  const throttledOnly = Deno.env.get(ONLY_ENV) === "throttled";
  const plans = throttledOnly
    ? allPlans.filter((plan) => plan.label === "warm-up" || plan.throttled)
    : allPlans;
  // Loaded here, not at the top: the server process (`--serve`) must not carry playwright.
  const { chromium } = await import("playwright-core");
  const server = await startServer();
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  let serverPeakRss = 0;
  try {
    const page = await (await browser.newContext({ locale: "en-US" })).newPage();
    const devtools = await page.context().newCDPSession(page);
    await devtools.send("Network.enable");
    await page.addInitScript(installUploadTrace);
    const runs: UploadRun[] = [];
    for (const { label, csv, compress, throttled } of plans) {
      const { bytes } = csv.expected;
      ctx.log(
        `browser upload (${label}): ${(bytes / 2 ** 20).toFixed(1)} MiB (${
          csv.expected.rows.toLocaleString("en-US")
        } rows)${csv.generated ? `, generated in ${csv.generateSec.toFixed(1)} s` : ""}`,
      );
      await devtools.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: throttled ? THROTTLED_BYTES_PER_SEC : -1,
      });
      await page.goto(`http://127.0.0.1:${server.port}/`);
      await page.waitForSelector('[data-island="UploadIsland"][data-hydrated="true"]');
      await page.getByLabel("Compress before sending").setChecked(compress);
      await page.getByLabel("Choose a CSV file").setInputFiles(csv.path);
      // Settle, then take the idle levels both processes start the upload from.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { serverRss, browserPss } = sampleMemory(server.pid).stop();
      const idle = { serverRss, browserPss };
      // Reading Chromium's PSS walks its page tables: every 100 ms it took this process a third of
      // a core, which a throttled compressed upload (bound by the CPU) would lose to the harness.
      const sampler = sampleMemory(server.pid, throttled ? 1000 : 100);
      const clickAt = await page.evaluate(() => performance.now());
      const cpu = cpuClock(server.pid);
      const started = performance.now();
      await page.getByRole("button", { name: "Upload" }).click();
      await page.waitForSelector("#results-heading", { timeout: 600_000 });
      const elapsedSec = (performance.now() - started) / 1000;
      const cpuSec = cpu();
      const peak = sampler.stop();
      const trace = summarizeTrace(
        // deno-lint-ignore no-explicit-any
        await page.evaluate(() => (globalThis as any).__uploadTrace as TraceEvent[]),
        clickAt,
        elapsedSec,
      );
      const shown = await page.evaluate(() =>
        ["summary-rows", "summary-bad-rows", "summary-departments"].map((id) =>
          Number(document.querySelector(`[data-testid=${id}]`)?.textContent?.replaceAll(",", ""))
        )
      );
      const expected = [csv.expected.rows, csv.expected.badRows, csv.expected.departments];
      // With compression on, the page still sends the file as it is when the link is fast.
      const wireFigure = page.getByTestId("summary-wire-bytes");
      const wireBytes = await wireFigure.count() > 0
        ? Number(await wireFigure.getAttribute("data-bytes"))
        : bytes;
      const run: UploadRun = {
        label,
        compress,
        throttled,
        rows: csv.expected.rows,
        bytes,
        wireBytes,
        elapsedSec,
        mbPerSec: mb(bytes) / elapsedSec,
        shownMatchesExpected: shown.every((value, i) => value === expected[i]),
        shown,
        expected,
        idle,
        peak,
        cpuSec,
        trace,
      };
      ctx.log(
        `  ${elapsedSec.toFixed(2)} s, ${run.mbPerSec.toFixed(1)} MB/s, ${
          mb(wireBytes).toFixed(1)
        } MB sent (${mb(wireBytes / elapsedSec).toFixed(1)} MB/s); server RSS ${
          mb(idle.serverRss).toFixed(0)
        } -> ${mb(peak.serverRss).toFixed(0)} MB; Chromium PSS ${
          mb(idle.browserPss).toFixed(0)
        } -> ${mb(peak.browserPss).toFixed(0)} MB; CPU ${cpuSec.browser.toFixed(1)} s Chromium, ${
          cpuSec.server.toFixed(1)
        } s server, ${cpuSec.bench.toFixed(1)} s this process, ${
          cpuSec.other.toFixed(1)
        } s other; Chromium by process ${JSON.stringify(cpuSec.browserByType)}`,
      );
      const { timeline: _, jobs: __, ...traceSummary } = trace;
      ctx.log(
        `  trace ${
          JSON.stringify(traceSummary, (_, value) =>
            typeof value === "number" ? +value.toFixed(2) : value)
        }`,
      );
      runs.push(run);
    }
    serverPeakRss = await server.stop();

    if (throttledOnly) return throttledResult(runs[1], runs[2], runs);
    const [small, firstBig, big, compressed, throttledCompressed, throttled] = runs;
    const loopbackCost = compressed.elapsedSec / big.elapsedSec - 1;
    const throttledSpeedup = throttled.elapsedSec / throttledCompressed.elapsedSec;
    const throttledWireRate = throttled.wireBytes / throttled.elapsedSec;
    // Flat: the second half of the upload peaks no higher than the first (within GC noise). Six
    // uploads of 256 MiB in a row peaked between 155 and 178 MB: a plateau, not a trend.
    const firstHalfPeak = mb(big.peak.firstHalf.serverRss);
    const serverGrowth = mb(big.peak.secondHalf.serverRss) - firstHalfPeak;
    const serverSlack = Math.max(SERVER_FLAT_SLACK_MB, firstHalfPeak * 0.1);
    const browserGrowth = mb(big.peak.browserPss - big.idle.browserPss);
    const size = (run: UploadRun) => `${(run.bytes / 2 ** 20).toFixed(1)} MiB`;
    return {
      name: "browser-upload",
      description: `Chromium uploads ${size(big)} through the page's island (chunked gRPC-Web, ` +
        `Blob bodies) to the web port with the real service in its own process; measured on the ` +
        `second of two ${size(big)} uploads, after a ${size(small)} warm-up; then with the ` +
        `page's compression on, on loopback and on a link throttled to ` +
        `${THROTTLED_BYTES_PER_SEC * 8 / 1e6} Mbit/s up (and uncompressed there too)`,
      metrics: [
        one("throughput (click to results)", "MB/s", big.mbPerSec),
        one("elapsed", "s", big.elapsedSec, 2),
        one(`throughput, ${size(small)}`, "MB/s", small.mbPerSec),
        one("server RSS idle", "MB", mb(big.idle.serverRss)),
        one("server RSS peak (sampled)", "MB", mb(big.peak.serverRss)),
        one(`server RSS peak, ${size(small)}`, "MB", mb(small.peak.serverRss)),
        one("server VmHWM (whole run)", "MB", mb(serverPeakRss)),
        one("Chromium PSS idle", "MB", mb(big.idle.browserPss)),
        one("Chromium PSS peak (sampled)", "MB", mb(big.peak.browserPss)),
        one("compressed, loopback", "MB/s", compressed.mbPerSec),
        one("compressed / uncompressed time, loopback", "x", 1 + loopbackCost, 2),
        one("compressed bytes sent, loopback", "MB", mb(compressed.wireBytes)),
        one("Chromium PSS peak, compressed (sampled)", "MB", mb(compressed.peak.browserPss)),
        one("server RSS peak, compressed (sampled)", "MB", mb(compressed.peak.serverRss)),
        one(
          `uncompressed, ${THROTTLED_BYTES_PER_SEC * 8 / 1e6} Mbit/s up`,
          "s",
          throttled.elapsedSec,
          2,
        ),
        one(
          `compressed, ${THROTTLED_BYTES_PER_SEC * 8 / 1e6} Mbit/s up`,
          "s",
          throttledCompressed.elapsedSec,
          2,
        ),
        one("compressed bytes sent, throttled", "MB", mb(throttledCompressed.wireBytes)),
        one(
          "Chromium PSS peak, compressed, throttled (sampled)",
          "MB",
          mb(throttledCompressed.peak.browserPss),
        ),
        one("speed-up from compression, throttled", "x", throttledSpeedup, 2),
      ],
      checks: [
        {
          name: "the page shows the expected rows, bad rows and departments",
          pass: runs.every((run) => run.shownMatchesExpected),
          detail: runs.map((run) =>
            `shown ${run.shown.join("/")}, expected ${run.expected.join("/")}`
          )
            .join("; "),
        },
        {
          name: `throughput >= ${TARGET_MB_PER_SEC} MB/s`,
          pass: big.mbPerSec >= TARGET_MB_PER_SEC,
          detail: `${big.mbPerSec.toFixed(1)} MB/s (${size(big)} in ${
            big.elapsedSec.toFixed(2)
          } s)`,
        },
        throttledCheck(throttled, throttledCompressed),
        {
          name: "throttling applies to the page's gRPC-Web requests",
          pass: throttledWireRate <= THROTTLED_BYTES_PER_SEC * 1.02 &&
            throttledWireRate >= THROTTLED_BYTES_PER_SEC * 0.7,
          detail: `uncompressed throttled upload sent ${
            mb(throttledWireRate).toFixed(2)
          } MB/s, link ${mb(THROTTLED_BYTES_PER_SEC).toFixed(2)} MB/s`,
        },
        {
          name: `loopback: compression costs <= ${LOOPBACK_COST_TARGET * 100}%`,
          pass: loopbackCost <= LOOPBACK_COST_TARGET,
          detail: `${big.elapsedSec.toFixed(2)} s uncompressed, ${
            compressed.elapsedSec.toFixed(2)
          } s compressed (${mb(compressed.wireBytes).toFixed(1)} MB sent): ${
            (loopbackCost * 100).toFixed(1)
          }%`,
        },
        {
          name: "server memory flat: the upload's second half peaks no higher than its first",
          pass: serverGrowth <= serverSlack,
          detail: `peak ${firstHalfPeak.toFixed(1)} MB in the first half, ${
            mb(big.peak.secondHalf.serverRss).toFixed(1)
          } MB in the second (limit +${serverSlack.toFixed(1)} MB); ${
            mb(firstBig.peak.serverRss).toFixed(1)
          } MB for the unmeasured first upload of the same file, ${
            mb(small.peak.serverRss).toFixed(1)
          } MB for all of ${size(small)}`,
        },
        {
          name: `browser memory flat: growth <= ${BROWSER_GROWTH_LIMIT_MB} MB during the upload`,
          pass: browserGrowth <= BROWSER_GROWTH_LIMIT_MB,
          detail: `+${browserGrowth.toFixed(1)} MB over idle for ${size(big)}`,
        },
      ],
      runs: { uploads: runs, serverPeakRss },
    };
  } finally {
    await browser.close();
    if (serverPeakRss === 0) await server.stop().catch(() => {});
  }
}

/** A figure measured once: its best, median and worst are the one value. */
function one(name: string, unit: string, value: number, digits = 1): BenchMetric {
  return { name, unit, best: value, median: value, worst: value, digits };
}

/** The check of the throttled target, the same in the full run and the throttled-only one. */
function throttledCheck(throttled: UploadRun, throttledCompressed: UploadRun): BenchCheck {
  const speedup = throttled.elapsedSec / throttledCompressed.elapsedSec;
  return {
    name: `throttled: compressed finishes >= ${THROTTLED_SPEEDUP_TARGET}x sooner`,
    pass: speedup >= THROTTLED_SPEEDUP_TARGET,
    detail: `${throttled.elapsedSec.toFixed(2)} s uncompressed, ${
      throttledCompressed.elapsedSec.toFixed(2)
    } s compressed (${mb(throttledCompressed.wireBytes).toFixed(1)} MB sent): ${
      speedup.toFixed(2)
    }x`,
  };
}

/** The result of a {@linkcode ONLY_ENV}`=throttled` run: the throttled rows of the full one. */
function throttledResult(
  throttledCompressed: UploadRun,
  throttled: UploadRun,
  runs: UploadRun[],
): BenchResult {
  const speedup = throttled.elapsedSec / throttledCompressed.elapsedSec;
  const rate = `${THROTTLED_BYTES_PER_SEC * 8 / 1e6} Mbit/s up`;
  return {
    name: "browser-upload",
    description: `Only the throttled comparison (${ONLY_ENV}=throttled): Chromium uploads ` +
      `${(throttled.bytes / 2 ** 20).toFixed(1)} MiB through the page on a link throttled to ` +
      `${rate}, compressed and not`,
    metrics: [
      one(`uncompressed, ${rate}`, "s", throttled.elapsedSec, 2),
      one(`compressed, ${rate}`, "s", throttledCompressed.elapsedSec, 2),
      one("compressed bytes sent, throttled", "MB", mb(throttledCompressed.wireBytes), 1),
      one("speed-up from compression, throttled", "x", speedup, 2),
    ],
    checks: [
      {
        name: "the page shows the expected rows, bad rows and departments",
        pass: runs.every((run) => run.shownMatchesExpected),
        detail: runs.map((run) => `shown ${run.shown.join("/")}`).join("; "),
      },
      throttledCheck(throttled, throttledCompressed),
    ],
    runs: { uploads: runs },
  };
}

/** The server process: real service, web handler, fresh storage and bundle in a scratch folder. */
async function serve(): Promise<void> {
  const { createSalesService } = await import("../server/service/sales_service.ts");
  const { ResultStore } = await import("../server/storage/result_store.ts");
  const { createWebHandler } = await import("../server/web/web_app.ts");
  const { buildIslands } = await import("../server/web/build.ts");
  const scratch = await Deno.makeTempDir({ prefix: "browser_upload_bench_" });
  try {
    const buildDir = new URL(`file://${scratch}/build/`);
    await buildIslands({ outDir: buildDir });
    const service = createSalesService({
      store: await ResultStore.open(`${scratch}/storage`),
      publicResultsUrl: "http://localhost:8080",
    });
    const handler = createWebHandler({
      service,
      config: {
        grpcWebUrl: "",
        corsOrigins: [],
        maxMessageBytes: 64 << 20,
        maxUploadBytes: undefined,
      },
      buildDir,
    });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
    console.log(JSON.stringify({ port: server.addr.port }));
    // Serve until the parent closes our stdin.
    for await (const _ of Deno.stdin.readable) {
      // Nothing is sent; this only waits for the end.
    }
    await server.shutdown();
    service.close();
    console.log(JSON.stringify({ peakRssBytes: procKb(Deno.pid, "status", "VmHWM") }));
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

if (import.meta.main) {
  if (Deno.args.includes("--serve")) {
    await serve();
  } else {
    const { runAsScript } = await import("./_report.ts");
    await runAsScript(browserUploadBench);
  }
}
