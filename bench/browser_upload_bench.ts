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
 * Run alone with `deno run -A bench/browser_upload_bench.ts [--quick]`, or via `deno task bench`.
 * With `--serve`, the module is the server process instead: it prints `{"port":N}` and serves until
 * its stdin closes, then prints `{"peakRssBytes":N}`.
 *
 * @module
 */

import type { BenchContext, BenchResult } from "./_report.ts";
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
  const plans = [
    { label: "warm-up", csv: smallFile, compress: false, throttled: false },
    { label: "ramp", csv: bigFile, compress: false, throttled: false },
    { label: "loopback", csv: bigFile, compress: false, throttled: false },
    { label: "loopback compressed", csv: bigFile, compress: true, throttled: false },
    { label: "throttled compressed", csv: bigFile, compress: true, throttled: true },
    { label: "throttled", csv: bigFile, compress: false, throttled: true },
  ];
  // Loaded here, not at the top: the server process (`--serve`) must not carry playwright.
  const { chromium } = await import("playwright-core");
  const server = await startServer();
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  let serverPeakRss = 0;
  try {
    const page = await (await browser.newContext({ locale: "en-US" })).newPage();
    const devtools = await page.context().newCDPSession(page);
    await devtools.send("Network.enable");
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
      const sampler = sampleMemory(server.pid);
      const started = performance.now();
      await page.getByRole("button", { name: "Upload" }).click();
      await page.waitForSelector("#results-heading", { timeout: 600_000 });
      const elapsedSec = (performance.now() - started) / 1000;
      const peak = sampler.stop();
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
      };
      ctx.log(
        `  ${elapsedSec.toFixed(2)} s, ${run.mbPerSec.toFixed(1)} MB/s, ${
          mb(wireBytes).toFixed(1)
        } MB sent (${mb(wireBytes / elapsedSec).toFixed(1)} MB/s); server RSS ${
          mb(idle.serverRss).toFixed(0)
        } -> ${mb(peak.serverRss).toFixed(0)} MB; Chromium PSS ${
          mb(idle.browserPss).toFixed(0)
        } -> ${mb(peak.browserPss).toFixed(0)} MB`,
      );
      runs.push(run);
    }
    serverPeakRss = await server.stop();

    const [small, firstBig, big, compressed, throttledCompressed, throttled] = runs;
    const loopbackCost = compressed.elapsedSec / big.elapsedSec - 1;
    const throttledSpeedup = throttled.elapsedSec / throttledCompressed.elapsedSec;
    const throttledWireRate = throttled.wireBytes / throttled.elapsedSec;
    const one = (name: string, unit: string, value: number, digits = 1) => ({
      name,
      unit,
      best: value,
      median: value,
      worst: value,
      digits,
    });
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
        {
          name: `throttled: compressed finishes >= ${THROTTLED_SPEEDUP_TARGET}x sooner`,
          pass: throttledSpeedup >= THROTTLED_SPEEDUP_TARGET,
          detail: `${throttled.elapsedSec.toFixed(2)} s uncompressed, ${
            throttledCompressed.elapsedSec.toFixed(2)
          } s compressed (${mb(throttledCompressed.wireBytes).toFixed(1)} MB sent): ${
            throttledSpeedup.toFixed(2)
          }x`,
        },
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
