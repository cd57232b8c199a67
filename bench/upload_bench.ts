/**
 * End-to-end upload benchmark for the gRPC service: a generated CSV streamed with
 * `UploadCSVStream` from this process (the client, chunked as `deno task upload` does) to a server
 * child process on loopback, timed from the first byte read to the stored result. Targets: at
 * least 200 MB/s on a 1 GiB file, and a server peak RSS (VmHWM from `/proc/<pid>/status`) of at
 * most 200 MB that stays within 10% between a 256 MiB and a 1 GiB upload. Also measured, without a
 * target: the resumable path (`StartUpload`, `AppendUpload` in 4 MiB chunks, `FinishUpload`).
 * Both paths also upload the 256 MiB file's gzip copy, in the same run: its speed (bytes of CSV
 * per second) must be at least 0.75 of the plain file's on each path.
 *
 * Every upload gets a fresh server, started with the flags of `deno task start`, so each peak RSS
 * is that upload's own. Every result is checked against the generator's expected totals.
 *
 * Run alone with `deno run -A bench/upload_bench.ts [--quick]`, or via `deno task bench grpc-upload`.
 *
 * @module
 */

import { readFileChunks, uploadChunks } from "../server/cli/upload.ts";
import { GrpcSalesClient } from "../server/grpc/sales_client.ts";
import type { UploadResponse } from "../server/service/types.ts";
import { type BenchCheck, type BenchContext, type BenchResult, metricOf } from "./_report.ts";
import { type CachedSalesCsv, ensureSalesCsv } from "./generate_sales_csv.ts";
import { ensureGzipCopy } from "./_bench_inputs.ts";
import { loopbackEnv } from "../server/_test_loopback_env.ts";

/** Minimum end-to-end streaming throughput on the 1 GiB file, in MB/s (10^6 bytes). */
export const TARGET_MB_PER_SEC = 200;
/** Maximum server peak RSS during a streaming upload, in MB. */
export const TARGET_PEAK_RSS_MB = 200;
/** How far the 1 GiB upload's server peak may be from the 256 MiB one's, as a fraction. */
export const RSS_FLAT_FRACTION = 0.1;
/** Least speed of a `.gz` upload against the same file plain, on each path. */
export const TARGET_GZIP_RATIO = 0.75;
/** Maximum peak RSS of `deno task upload` (a child process) on the 1 GiB file, in MB. */
export const TARGET_CLIENT_PEAK_RSS_MB = 150;
/** Chunk size of the resumable path, as a browser would send it. */
export const RESUMABLE_CHUNK_BYTES = 4 * 1024 * 1024;

/** Rows of the generated files: 10,210,000 rows are 268.5 MB (> 256 MiB), 40,840,000 are 1.074 GB (> 1 GiB). */
const FULL_ROWS = { small: 10_210_000, large: 40_840_000 };
const QUICK_ROWS = { small: 250_000, large: 1_000_000 };
const MAIN = new URL("../server/main.ts", import.meta.url);
const CLI = new URL("../server/cli/upload.ts", import.meta.url);
const DENO_JSON = new URL("../deno.json", import.meta.url);

interface UploadRun {
  path: "stream" | "resumable";
  /** Whether the file's gzip copy was sent. */
  gzip: boolean;
  /** Bytes of CSV (for gzip: once inflated). */
  bytes: number;
  seconds: number;
  mbPerSec: number;
  serverIdleRssMb: number;
  serverPeakRssMb: number;
  problems: string[];
}

/** Runs the upload benchmark; see the module doc. */
export async function uploadBench(ctx: BenchContext): Promise<BenchResult> {
  const rows = ctx.quick ? QUICK_ROWS : FULL_ROWS;
  const small = await prepare(rows.small, ctx);
  const large = await prepare(rows.large, ctx);
  const serverArgs = await startTaskArgs();

  const smallGzip = await ensureGzipCopy(small.path);
  const runs = {
    streamSmall: await measure("stream", small, serverArgs, ctx),
    streamSmallGzip: await measure("stream", small, serverArgs, ctx, smallGzip),
    // Compressed on the way, as `deno task upload` sends it by default.
    streamSmallCompressed: await measure("stream", small, serverArgs, ctx, undefined, true),
    streamLarge: await measure("stream", large, serverArgs, ctx),
    resumableSmall: await measure("resumable", small, serverArgs, ctx),
    resumableSmallGzip: await measure("resumable", small, serverArgs, ctx, smallGzip),
  };
  const { streamSmall, streamSmallGzip, streamLarge, resumableSmall, resumableSmallGzip } = runs;
  const cliLarge = await measureCliPeakRss(large, serverArgs, ctx);
  const { streamSmallCompressed } = runs;
  const streamGzipRatio = streamSmall.seconds / streamSmallGzip.seconds;
  const resumableGzipRatio = resumableSmall.seconds / resumableSmallGzip.seconds;

  const metrics = [
    metricOf(`stream ${sizeLabel(large)}`, "MB/s", [streamLarge.mbPerSec], true),
    metricOf(`stream ${sizeLabel(small)}`, "MB/s", [streamSmall.mbPerSec], true),
    metricOf(`resumable 4 MiB chunks ${sizeLabel(small)}`, "MB/s", [resumableSmall.mbPerSec], true),
    metricOf(
      `server peak RSS, stream ${sizeLabel(large)}`,
      "MB",
      [streamLarge.serverPeakRssMb],
      false,
    ),
    metricOf(
      `server peak RSS, stream ${sizeLabel(small)}`,
      "MB",
      [streamSmall.serverPeakRssMb],
      false,
    ),
    metricOf(
      `server peak RSS, resumable ${sizeLabel(small)}`,
      "MB",
      [resumableSmall.serverPeakRssMb],
      false,
    ),
    metricOf("server RSS idle before upload", "MB", [streamLarge.serverIdleRssMb], false),
    metricOf(
      `client peak RSS, deno task upload ${sizeLabel(large)}`,
      "MB",
      [cliLarge.peakRssMb],
      false,
    ),
    metricOf(`stream .gz ${sizeLabel(small)}`, "MB/s", [streamSmallGzip.mbPerSec], true),
    metricOf(`resumable .gz ${sizeLabel(small)}`, "MB/s", [resumableSmallGzip.mbPerSec], true),
    metricOf("stream: .gz / plain speed", "x", [streamGzipRatio], true, 2),
    metricOf(
      `stream compressed by the client ${sizeLabel(small)}`,
      "MB/s",
      [streamSmallCompressed.mbPerSec],
      true,
    ),
    metricOf(
      "stream: compressed by the client / plain speed",
      "x",
      [streamSmall.seconds / streamSmallCompressed.seconds],
      true,
      2,
    ),
    metricOf("resumable: .gz / plain speed", "x", [resumableGzipRatio], true, 2),
    metricOf(
      `server peak RSS, stream .gz ${sizeLabel(small)}`,
      "MB",
      [streamSmallGzip.serverPeakRssMb],
      false,
    ),
  ];

  const problems = Object.entries(runs).flatMap(([name, run]) =>
    run.problems.map((problem) => `${name}: ${problem}`)
  );
  const worstStreamPeak = Math.max(streamSmall.serverPeakRssMb, streamLarge.serverPeakRssMb);
  const peakChange = Math.abs(streamLarge.serverPeakRssMb - streamSmall.serverPeakRssMb) /
    streamSmall.serverPeakRssMb;
  const checks: BenchCheck[] = [
    {
      name: `deno task upload peak RSS <= ${TARGET_CLIENT_PEAK_RSS_MB} MB on ${sizeLabel(large)}`,
      pass: cliLarge.ok && cliLarge.peakRssMb <= TARGET_CLIENT_PEAK_RSS_MB,
      detail: `${cliLarge.peakRssMb.toFixed(1)} MB (VmHWM), ${cliLarge.seconds.toFixed(2)} s` +
        (cliLarge.ok ? "" : ", the upload FAILED"),
    },
    {
      name: "every upload's result matches the generator's expected totals",
      pass: problems.length === 0,
      detail: problems.length === 0
        ? `${Object.keys(runs).length} uploads: rows, bad rows, departments and ${
          Object.keys(large.expected.totals).length
        } totals`
        : problems.slice(0, 5).join("; "),
    },
    {
      name: `stream ${sizeLabel(large)} >= ${TARGET_MB_PER_SEC} MB/s`,
      pass: streamLarge.mbPerSec >= TARGET_MB_PER_SEC,
      detail: `${streamLarge.mbPerSec.toFixed(1)} MB/s (${
        streamLarge.seconds.toFixed(2)
      } s, 1 run)`,
    },
    {
      name: `server peak RSS <= ${TARGET_PEAK_RSS_MB} MB while streaming`,
      pass: worstStreamPeak <= TARGET_PEAK_RSS_MB,
      detail: `${streamSmall.serverPeakRssMb.toFixed(1)} MB (${sizeLabel(small)}), ` +
        `${streamLarge.serverPeakRssMb.toFixed(1)} MB (${sizeLabel(large)})`,
    },
    {
      name: `server peak RSS within ${RSS_FLAT_FRACTION * 100}% from ${sizeLabel(small)} to ${
        sizeLabel(large)
      }`,
      pass: peakChange <= RSS_FLAT_FRACTION,
      detail: `${(peakChange * 100).toFixed(1)}% apart`,
    },
    {
      name: `stream: .gz >= ${TARGET_GZIP_RATIO}x the plain file's speed`,
      pass: streamGzipRatio >= TARGET_GZIP_RATIO,
      detail: `${streamGzipRatio.toFixed(2)}x (${streamSmallGzip.seconds.toFixed(2)} s against ${
        streamSmall.seconds.toFixed(2)
      } s, 1 run each)`,
    },
    {
      name: `resumable: .gz >= ${TARGET_GZIP_RATIO}x the plain file's speed`,
      pass: resumableGzipRatio >= TARGET_GZIP_RATIO,
      detail: `${resumableGzipRatio.toFixed(2)}x (${
        resumableSmallGzip.seconds.toFixed(2)
      } s against ${resumableSmall.seconds.toFixed(2)} s, 1 run each)`,
    },
  ];

  return {
    name: "grpc-upload",
    description: `UploadCSVStream of ${sizeLabel(small)} and ${sizeLabel(large)} generated CSVs ` +
      `(client here, server in a fresh child process on loopback), and the resumable path in ` +
      `${RESUMABLE_CHUNK_BYTES / 2 ** 20} MiB chunks on ${sizeLabel(small)}; 1 run each`,
    metrics,
    checks,
    runs: { serverArgs, ...runs },
  };
}

/** Generates or reuses the input, then reads it once so the upload starts from the page cache. */
async function prepare(rows: number, ctx: BenchContext): Promise<CachedSalesCsv> {
  const file = await ensureSalesCsv(rows);
  ctx.log(
    file.generated
      ? `generated ${file.path} (${rows.toLocaleString("en-US")} rows) in ${
        file.generateSec.toFixed(1)
      } s`
      : `using cached ${file.path}`,
  );
  using handle = await Deno.open(file.path);
  const buffer = new Uint8Array(1 << 20);
  while (await handle.read(buffer) !== null) {
    // Reading is the point.
  }
  return file;
}

/** The `deno run` flags of `deno task start`, so the server runs as users run it. */
export async function startTaskArgs(): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(DENO_JSON)).tasks as Record<string, string>;
  const match = /deno run ((?:--?\S+ )*)server\/main\.ts/.exec(tasks.start ?? "");
  if (!match) throw new Error(`Cannot find "deno run ... server/main.ts" in the start task`);
  return match[1].trim().split(/\s+/);
}

/**
 * Uploads `file` (or its gzip copy at `gzipPath`) along `path` to a fresh server and reports
 * speed, memory and correctness.
 */
async function measure(
  path: UploadRun["path"],
  file: CachedSalesCsv,
  serverArgs: string[],
  ctx: BenchContext,
  gzipPath?: string,
  compress = false,
): Promise<UploadRun> {
  await using server = await startServerProcess(serverArgs);
  const serverIdleRssMb = server.rssMb("VmRSS");
  const client = new GrpcSalesClient(server.address);
  try {
    const sent = gzipPath ?? file.path;
    const sentBytes = (await Deno.stat(sent)).size;
    const started = performance.now();
    const response = path === "stream"
      ? await client.uploadStream(
        compress
          ? (await uploadChunks(await Deno.open(sent), true)).chunks
          : readFileChunks(await Deno.open(sent)),
        "bench.csv",
      )
      : await client.uploadResumable(
        readFileChunks(await Deno.open(sent), RESUMABLE_CHUNK_BYTES),
        "bench.csv",
        sentBytes,
      );
    const seconds = (performance.now() - started) / 1000;
    const serverPeakRssMb = server.rssMb("VmHWM");
    const problems = await verify(client, response, file);
    const run: UploadRun = {
      path,
      gzip: gzipPath !== undefined,
      bytes: file.expected.bytes,
      seconds,
      mbPerSec: file.expected.bytes / 1e6 / seconds,
      serverIdleRssMb,
      serverPeakRssMb,
      problems,
    };
    ctx.log(
      `  ${path}${gzipPath ? " .gz" : ""}${compress ? " compressed" : ""} ${sizeLabel(file)}: ` +
        `${seconds.toFixed(2)} s, ` +
        `${run.mbPerSec.toFixed(1)} MB/s, ` +
        `server RSS idle ${serverIdleRssMb.toFixed(1)} MB, peak ${serverPeakRssMb.toFixed(1)} MB` +
        (problems.length > 0 ? `, WRONG RESULT: ${problems[0]}` : ""),
    );
    return run;
  } finally {
    client.close();
  }
}

/**
 * Runs `deno task upload` (its flags from deno.json) on `file` as a child process against a fresh
 * server, and reads the child's peak RSS (VmHWM) from /proc until it exits.
 */
async function measureCliPeakRss(
  file: CachedSalesCsv,
  serverArgs: string[],
  ctx: BenchContext,
): Promise<{ peakRssMb: number; seconds: number; ok: boolean }> {
  await using server = await startServerProcess(serverArgs);
  const tasks = JSON.parse(await Deno.readTextFile(DENO_JSON)).tasks as Record<string, string>;
  const flags = /deno run ((?:--?\S+ )*)server\/cli\/upload\.ts/.exec(tasks.upload)![1].trim();
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags.split(/\s+/), CLI.pathname, file.path, "--addr", server.address],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  let peakKb = 0;
  let exited = false;
  output.finally(() => exited = true);
  while (!exited) {
    try {
      const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
      peakKb = Math.max(peakKb, Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0));
    } catch {
      // Exited between the check and the read.
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const { code, stdout } = await output;
  const seconds = (performance.now() - started) / 1000;
  const ok = code === 0 && JSON.parse(new TextDecoder().decode(stdout)).rows === file.expected.rows;
  ctx.log(
    `  deno task upload ${sizeLabel(file)}: ${seconds.toFixed(2)} s, client peak RSS ${
      (peakKb * 1024 / 1e6).toFixed(1)
    } MB${ok ? "" : ", FAILED"}`,
  );
  return { peakRssMb: peakKb * 1024 / 1e6, seconds, ok };
}

/** Differences between an upload's result and the generator's expectation. */
async function verify(
  client: GrpcSalesClient,
  response: UploadResponse,
  file: CachedSalesCsv,
): Promise<string[]> {
  const want = file.expected;
  const problems: string[] = [];
  if (response.rows !== want.rows) problems.push(`rows ${response.rows}, expected ${want.rows}`);
  if (response.badRows !== want.badRows) {
    problems.push(`bad rows ${response.badRows}, expected ${want.badRows}`);
  }
  if (response.departments !== want.departments) {
    problems.push(`departments ${response.departments}, expected ${want.departments}`);
  }
  const totals = parseResultCsv(
    new TextDecoder().decode(await client.downloadResult(response.resultId)),
  );
  for (const name of new Set([...Object.keys(want.totals), ...totals.keys()])) {
    if (totals.get(name) !== want.totals[name]) {
      problems.push(
        `total of ${JSON.stringify(name)} ${totals.get(name)}, expected ${want.totals[name]}`,
      );
    }
  }
  return problems;
}

/** Department -> total from a result CSV (RFC 4180 quoting; no formula-prefixed names here). */
function parseResultCsv(csv: string): Map<string, string> {
  const totals = new Map<string, string>();
  for (const line of csv.trimEnd().split("\n").slice(1)) {
    const comma = line.lastIndexOf(",");
    const field = line.slice(0, comma);
    const name = field.startsWith('"') ? field.slice(1, -1).replaceAll('""', '"') : field;
    totals.set(name, line.slice(comma + 1));
  }
  return totals;
}

/**
 * A server child process on loopback with fresh storage, with `env` added to its environment;
 * disposing stops it and removes the storage.
 */
export async function startServerProcess(serverArgs: string[], env: Record<string, string> = {}) {
  const storageDir = await Deno.makeTempDir({ prefix: "upload_bench_" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...serverArgs, MAIN.pathname],
    env: { ...loopbackEnv(storageDir), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let output = "";
  let port = 0;
  while (port === 0) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The server exited before listening:\n${output}`);
    output += value;
    port = Number(/\[gRPC\] Listening on [^\n]*:(\d+)\n/.exec(output)?.[1] ?? 0);
  }
  // Keep draining stdout so the server never blocks on a full pipe.
  const drained = (async () => {
    while (!(await reader.read()).done) {
      // Discard.
    }
  })();
  return {
    address: `127.0.0.1:${port}`,
    pid: child.pid,
    /** A memory figure of the server from /proc, in MB. */
    rssMb(field: "VmRSS" | "VmHWM"): number {
      const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
      return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024 /
        1e6;
    },
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await drained;
      await Deno.remove(storageDir, { recursive: true });
    },
  };
}

function sizeLabel(file: CachedSalesCsv): string {
  const bytes = file.expected.bytes;
  return bytes >= 2 ** 30
    ? `${(bytes / 2 ** 30).toFixed(2)} GiB`
    : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

if (import.meta.main) {
  const { runAsScript } = await import("./_report.ts");
  await runAsScript(uploadBench);
}
