/**
 * Load benchmark: 32 concurrent streaming uploads (`UploadCSVStream`, 256 KiB messages as
 * `deno task upload` sends them) plus 32 concurrent chunked uploads (`StartUpload`, `AppendUpload`
 * in 4 MiB chunks, each waiting for the previous acknowledgement as the browser does,
 * `FinishUpload`) of a generated 32 MiB CSV, from this process (one grpc-js client) to a server
 * child process on loopback started with the flags of `deno task start`. The default
 * `MAX_CONCURRENT_UPLOADS` of 64 must admit all of them. The one process stands in for 64 clients,
 * so its server allows 64 uploads per client address instead of the default 16.
 *
 * Reported: aggregate throughput (all bytes over the wall time of the whole load), latency per
 * upload (p50, p99), server peak RSS (VmHWM). The baseline is a single 32 MiB streaming upload on
 * the same server just before (median of 3, after one warm-up upload). Targets: aggregate throughput at least 80% of the
 * single-upload figure, and no failed upload: every result equals the aggregate command's
 * (`aggregateInputFile` then `formatResultCsv`) byte for byte.
 *
 * Bounded: 3 + 64 uploads, and the load is abandoned (and fails) after {@linkcode TIME_LIMIT_MS}.
 * Run alone with `deno run -A bench/load_bench.ts [--quick]`, or `deno task bench concurrent`.
 *
 * @module
 */

import { formatResultCsv } from "../server/aggregate/_reference.ts";
import { aggregateInputFile } from "../server/aggregate/sales_input.ts";
import { GrpcSalesClient } from "../server/grpc/sales_client.ts";
import type { UploadResponse } from "../server/service/types.ts";
import {
  type BenchCheck,
  type BenchContext,
  type BenchResult,
  median,
  metricOf,
} from "./_report.ts";
import { ensureSalesCsv } from "./generate_sales_csv.ts";
import { startServerProcess, startTaskArgs } from "./upload_bench.ts";

/** Concurrent streaming uploads. */
export const STREAM_UPLOADS = 32;
/** Concurrent chunked uploads, at the same time as the streaming ones. */
export const CHUNKED_UPLOADS = 32;
/** Chunk size of the chunked uploads, as a browser sends them. */
export const CHUNK_BYTES = 4 * 1024 * 1024;
/** Message size of the streaming uploads, as `deno task upload` sends them. */
export const STREAM_MESSAGE_BYTES = 256 * 1024;
/** The load's aggregate throughput must be at least this fraction of a single upload's. */
export const TARGET_FRACTION = 0.8;
/** The load is abandoned after this long, and the benchmark fails. */
export const TIME_LIMIT_MS = 180_000;
/** Single uploads measured for the baseline; the median counts. */
const BASELINE_RUNS = 3;
/** Rows of the input: 1,280,000 generated rows are 33.6 MB, just over 32 MiB. */
const FULL_ROWS = 1_280_000;
const QUICK_ROWS = 100_000;

type UploadKind = "stream" | "chunked";

interface UploadOutcome {
  kind: UploadKind;
  /** Seconds from the start of the load to the response (all uploads start together). */
  seconds: number;
  response?: UploadResponse;
  error?: string;
}

/** Runs the load benchmark; see the module doc. */
export async function loadBench(ctx: BenchContext): Promise<BenchResult> {
  const file = await ensureSalesCsv(ctx.quick ? QUICK_ROWS : FULL_ROWS);
  ctx.log(
    file.generated
      ? `generated ${file.path} in ${file.generateSec.toFixed(1)} s`
      : `using cached ${file.path}`,
  );
  const bytes = await Deno.readFile(file.path);
  const mib = (bytes.length / 2 ** 20).toFixed(1);
  // The reference: what `deno task aggregate` writes for this file.
  const expectedCsv = formatResultCsv((await aggregateInputFile(file.path)).totals);
  const serverArgs = await startTaskArgs();

  await using server = await startServerProcess(serverArgs, {
    MAX_UPLOADS_PER_CLIENT: String(STREAM_UPLOADS + CHUNKED_UPLOADS),
  });
  const serverIdleRssMb = server.rssMb("VmRSS");
  const client = new GrpcSalesClient(server.address);
  try {
    // Baseline: one upload at a time on the same server, once its code is compiled, as it is
    // for the load (the first upload of a fresh server runs at about half speed).
    await client.uploadStream(slices(bytes, STREAM_MESSAGE_BYTES), "warm-up.csv");
    const baseline: { seconds: number; mbPerSec: number; response: UploadResponse }[] = [];
    for (let i = 0; i < BASELINE_RUNS; i++) {
      const started = performance.now();
      const response = await client.uploadStream(
        slices(bytes, STREAM_MESSAGE_BYTES),
        `single-${i}.csv`,
      );
      const seconds = (performance.now() - started) / 1000;
      baseline.push({ seconds, mbPerSec: bytes.length / 1e6 / seconds, response });
      ctx.log(
        `  single ${mib} MiB stream: ${seconds.toFixed(2)} s, ` +
          `${(bytes.length / 1e6 / seconds).toFixed(1)} MB/s`,
      );
    }
    const singleMbPerSec = median(baseline.map((run) => run.mbPerSec));
    const serverRssBeforeLoadMb = server.rssMb("VmRSS");

    // The load: every upload starts at once.
    ctx.log(
      `  load: ${STREAM_UPLOADS} streaming + ${CHUNKED_UPLOADS} chunked uploads of ${mib} MiB...`,
    );
    const kinds: UploadKind[] = [
      ...Array<UploadKind>(STREAM_UPLOADS).fill("stream"),
      ...Array<UploadKind>(CHUNKED_UPLOADS).fill("chunked"),
    ];
    const cpuBefore = { server: cpuSeconds(server.pid), client: cpuSeconds("self") };
    const loadStarted = performance.now();
    const uploads = kinds.map(async (kind, i): Promise<UploadOutcome> => {
      try {
        const response = kind === "stream"
          ? await client.uploadStream(slices(bytes, STREAM_MESSAGE_BYTES), `load-${i}.csv`)
          : await client.uploadResumable(slices(bytes, CHUNK_BYTES), `load-${i}.csv`, bytes.length);
        return { kind, seconds: (performance.now() - loadStarted) / 1000, response };
      } catch (error) {
        return {
          kind,
          seconds: (performance.now() - loadStarted) / 1000,
          error: (error as Error)?.message ?? String(error),
        };
      }
    });
    const deadline = Promise.withResolvers<undefined>();
    const timer = setTimeout(() => deadline.resolve(undefined), TIME_LIMIT_MS);
    const outcomes = await Promise.race([Promise.all(uploads), deadline.promise]);
    clearTimeout(timer);
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const serverPeakRssMb = server.rssMb("VmHWM");
    // Busy share of one core during the load: near 100% for the server means its one JavaScript
    // thread is the limit; the client's share shows what is left of the 2 cores.
    const serverCpuPercent = 100 * (cpuSeconds(server.pid) - cpuBefore.server) / loadSeconds;
    const clientCpuPercent = 100 * (cpuSeconds("self") - cpuBefore.client) / loadSeconds;
    if (outcomes === undefined) {
      // The server goes when `server` is disposed; the calls in flight fail with it.
      return timedOut(ctx, loadSeconds, singleMbPerSec);
    }

    const failures: string[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      const problem = outcome.error ??
        await wrongResult(client, outcome.response!, expectedCsv, file.expected);
      if (problem !== undefined) failures.push(`${outcome.kind} #${i}: ${problem}`);
    }
    for (const [i, run] of baseline.entries()) {
      const problem = await wrongResult(client, run.response, expectedCsv, file.expected);
      if (problem !== undefined) failures.push(`single #${i}: ${problem}`);
    }

    const totalBytes = bytes.length * kinds.length;
    const loadMbPerSec = totalBytes / 1e6 / loadSeconds;
    const latencies = (kind?: UploadKind) =>
      outcomes.filter((o) => kind === undefined || o.kind === kind).map((o) => o.seconds);
    const ratio = loadMbPerSec / singleMbPerSec;
    ctx.log(
      `  load: ${loadSeconds.toFixed(2)} s, ${loadMbPerSec.toFixed(1)} MB/s aggregate ` +
        `(${(ratio * 100).toFixed(0)}% of single), p50 ${
          percentile(latencies(), 50).toFixed(2)
        } s, ` +
        `p99 ${percentile(latencies(), 99).toFixed(2)} s, server peak RSS ` +
        `${serverPeakRssMb.toFixed(1)} MB, CPU server ${serverCpuPercent.toFixed(0)}% client ` +
        `${clientCpuPercent.toFixed(0)}%, ${failures.length} failed`,
    );

    const metrics = [
      metricOf(`single ${mib} MiB stream`, "MB/s", baseline.map((run) => run.mbPerSec), true),
      metricOf(`load aggregate, ${kinds.length} x ${mib} MiB`, "MB/s", [loadMbPerSec], true),
      metricOf("load wall time", "s", [loadSeconds], false, 2),
      ...(["stream", "chunked", undefined] as const).flatMap((kind) => {
        const label = kind ?? "any";
        return [
          metricOf(`latency p50 (${label})`, "s", [percentile(latencies(kind), 50)], false, 2),
          metricOf(`latency p99 (${label})`, "s", [percentile(latencies(kind), 99)], false, 2),
        ];
      }),
      metricOf("server peak RSS (VmHWM)", "MB", [serverPeakRssMb], false),
      metricOf("server CPU during the load", "% of a core", [serverCpuPercent], false, 0),
      metricOf("client CPU during the load", "% of a core", [clientCpuPercent], false, 0),
      metricOf("server RSS before the load", "MB", [serverRssBeforeLoadMb], false),
      metricOf("server RSS idle at start", "MB", [serverIdleRssMb], false),
    ];
    const checks: BenchCheck[] = [
      {
        name: "no failed upload, every result equals the aggregate command's",
        pass: failures.length === 0,
        detail: failures.length === 0
          ? `${kinds.length} concurrent + ${BASELINE_RUNS} single uploads, results byte-equal`
          : `${failures.length} failed: ${failures.slice(0, 3).join("; ")}`,
      },
      {
        name: `aggregate throughput >= ${TARGET_FRACTION * 100}% of a single upload`,
        pass: ratio >= TARGET_FRACTION,
        detail: `${loadMbPerSec.toFixed(1)} MB/s vs ${singleMbPerSec.toFixed(1)} MB/s single ` +
          `(median of ${BASELINE_RUNS}): ${(ratio * 100).toFixed(0)}%`,
      },
    ];
    return {
      name: "concurrent-load",
      description: `${STREAM_UPLOADS} streaming + ${CHUNKED_UPLOADS} chunked (4 MiB chunks) ` +
        `concurrent uploads of a ${mib} MiB generated CSV, one grpc-js client here, server child ` +
        `on loopback; baseline: single streaming upload, median of ${BASELINE_RUNS}`,
      metrics,
      checks,
      runs: {
        serverArgs,
        fileBytes: bytes.length,
        baseline: baseline.map(({ seconds, mbPerSec }) => ({ seconds, mbPerSec })),
        loadSeconds,
        loadMbPerSec,
        serverPeakRssMb,
        serverCpuPercent,
        clientCpuPercent,
        serverRssBeforeLoadMb,
        serverIdleRssMb,
        uploads: outcomes.map(({ kind, seconds, error }) => ({ kind, seconds, error })),
      },
    };
  } finally {
    client.close();
  }
}

/** `bytes` in consecutive pieces of `size` bytes (views, no copies). */
function* slices(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/** Why a response is wrong, or undefined: its counts and its stored bytes must match. */
async function wrongResult(
  client: GrpcSalesClient,
  response: UploadResponse,
  expectedCsv: string,
  expected: { rows: number; badRows: number; departments: number },
): Promise<string | undefined> {
  if (response.rows !== expected.rows || response.badRows !== expected.badRows) {
    return `rows ${response.rows}/${response.badRows} bad, expected ${expected.rows}/${expected.badRows}`;
  }
  if (response.departments !== expected.departments) {
    return `departments ${response.departments}, expected ${expected.departments}`;
  }
  const stored = new TextDecoder().decode(await client.downloadResult(response.resultId));
  return stored === expectedCsv ? undefined : `result ${response.resultId} differs`;
}

/** CPU time (user + system) a process has used so far, in seconds, from `/proc/<pid>/stat`. */
function cpuSeconds(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the parenthesized command name; utime and stime are the 12th and 13th, in ticks.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SEC;
}

/** Linux's USER_HZ, the unit of `/proc/<pid>/stat` times: 100 on every mainstream build. */
const CLOCK_TICKS_PER_SEC = 100;

/** Nearest-rank percentile of a non-empty list. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

function timedOut(ctx: BenchContext, seconds: number, singleMbPerSec: number): BenchResult {
  ctx.log(`  load: abandoned after ${seconds.toFixed(0)} s`);
  return {
    name: "concurrent-load",
    description: `${STREAM_UPLOADS} streaming + ${CHUNKED_UPLOADS} chunked concurrent uploads`,
    metrics: [metricOf("single stream", "MB/s", [singleMbPerSec], true)],
    checks: [{
      name: "no failed upload",
      pass: false,
      detail: `the load did not finish within ${TIME_LIMIT_MS / 1000} s`,
    }],
    runs: { timedOutAfterSeconds: seconds },
  };
}

if (import.meta.main) {
  const { runAsScript } = await import("./_report.ts");
  await runAsScript(loadBench);
}
