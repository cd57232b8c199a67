/**
 * Abuse benchmark: what one hostile client can make the server hold, and whether everyone else is
 * still served. Each scenario starts a fresh server child process (`deno task start`'s flags, on
 * loopback) and reports its peak RSS (`VmHWM`):
 *
 * - **a. unauthenticated uploads**: 16 concurrent 60 MiB `UploadCSV` calls without a token
 *   (`SALES_API_TOKEN` set), on native gRPC and on gRPC-Web (web port), a fresh server for each.
 *   Each call must be refused with `UNAUTHENTICATED` in under 100 ms, and the peak RSS stay within
 *   idle + 30 MB: nothing is read before the token is checked.
 * - **b. many large authenticated uploads**: 64 clients (32 native gRPC, 32 gRPC-Web; distinct
 *   `x-forwarded-for` behind `TRUSTED_PROXIES=127.0.0.1`, so the per-client limit does not
 *   interfere) each send one `MAX_MESSAGE_BYTES` (64 MiB) `UploadCSV` at once. No crash; each call
 *   is correct or `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`; the peak RSS stays within
 *   idle + {@linkcode BUFFERED_BYTES_FACTOR} x `MAX_BUFFERED_BYTES` + {@linkcode WAITING_WINDOWS_MB} +
 *   {@linkcode HEAP_SLACK_MB} +
 *   `MAX_CONCURRENT_UPLOADS` x {@linkcode PER_UPLOAD_MB}.
 * - **c. slot holding**: one client (`x-forwarded-for` 198.51.100.1, behind
 *   `TRUSTED_PROXIES=127.0.0.1`) starts `MAX_CONCURRENT_UPLOADS` chunked uploads and keeps them
 *   alive with empty appends. It gets `MAX_UPLOADS_PER_CLIENT` of them; another client's upload
 *   succeeds meanwhile; the holder's uploads expire after `UPLOAD_IDLE_TIMEOUT_SEC` (3 s here)
 *   despite the empty appends.
 * - **d. preface-only connections**: 500 connections to the gRPC port send the HTTP/2 preface and
 *   an empty SETTINGS, then nothing, with `CONNECTION_IDLE_TIMEOUT_SEC=10`: all are closed by the
 *   server within 20 s, while normal calls (both transports) are served throughout. 100 such
 *   connections to the web port are reported for information (Deno.serve has no idle timeout of
 *   its own; untrusted clients reach it through Envoy).
 * - **e. rapid reset**: 20,000 HEADERS + RST_STREAM pairs on each port (raw frames, new
 *   connections when the server sends GOAWAY): the server stays up and normal calls are served
 *   during and after.
 * - **f. GOAWAY on idle connections**: 20 rounds of 50 connections that make a call, then idle past
 *   `CONNECTION_IDLE_TIMEOUT_SEC` (1 s here) until the server closes them with GOAWAY (the frame
 *   behind denoland/deno#36788). Reports the server crash count, which must be 0.
 *
 * Every loop is bounded in count and time. Run alone with `deno run -A bench/abuse_bench.ts
 * [--quick] [a-f...]` (letters pick scenarios), or `deno task bench abuse`; `--quick` shrinks every
 * count and size.
 *
 * @module
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ClientHttp2Session } from "node:http2";
import { formatResultCsv } from "../server/aggregate/_reference.ts";
import { SalesAggregator } from "../server/aggregate/sales_aggregator.ts";
import { AppError, RETRY_PUSHBACK_HEADER, Status } from "../server/errors.ts";
import { UploadRequestSchema, UploadResponseSchema } from "../gen/sales_pb.ts";
import { GrpcSalesClient } from "../server/grpc/sales_client.ts";
import { type ServerProcess, startServerProcess } from "../server/_test_server_process.ts";
import {
  grpcFrame,
  openSession,
  type RawCallResult,
  unaryCall,
  type WireProtocol,
} from "./_grpc_h2.ts";
import { concatBytes } from "../server/_test_bytes.ts";
import {
  Flag,
  frame,
  FrameType,
  literalHeaderBlock,
  RawH2Connection,
  rstStream,
} from "./_h2_frames.ts";
import {
  type BenchCheck,
  type BenchContext,
  type BenchMetric,
  type BenchResult,
  median,
  metricOf,
} from "./_report.ts";
import { peakRssBytes } from "./_rss.ts";

/** Scenario a: most the server's RSS may grow while refusing unauthenticated uploads, in MB. */
export const UNAUTHENTICATED_RSS_MB = 30;
/** Scenario a: longest a refusal may take, in milliseconds. */
export const UNAUTHENTICATED_MS = 100;
/**
 * Scenario b: RSS per byte of `MAX_BUFFERED_BYTES` the README's bound allows. Measured: 2.2-2.4
 * (a message is held as received chunks, then as one buffer, while it is decoded and aggregated).
 */
export const BUFFERED_BYTES_FACTOR = 3;
/**
 * Scenario b: heap slack the bound allows on top, in MB: buffers released to the budget stay
 * resident until V8 collects them, which dominates with small budgets (measured +150-250 MB for
 * 8 MiB messages under a 64 MiB budget).
 */
export const HEAP_SLACK_MB = 250;
/**
 * Scenario b: what calls waiting for room may hold outside the budget, in MB: at most 64 wait at
 * once (BufferBudget's maxWaiters), each with up to the gRPC port's 4 MiB HTTP/2 stream window.
 */
export const WAITING_WINDOWS_MB = (64 * 4 * 2 ** 20) / 1e6;
/**
 * Scenario b: RSS per upload in progress the bound allows, in MB. Measured: about 0.15 MB per open
 * upload plus about 100 bytes per department it holds; these uploads have 997 departments.
 */
export const PER_UPLOAD_MB = 1;
/** Scenario d: longest a preface-only connection may stay open, in seconds. */
export const PREFACE_CLOSE_SEC = 20;

const MB = 1e6;
const MIB = 2 ** 20;
const TOKEN = "abuse-bench-token";
const UPLOAD_PATH = "/sales.v1.SalesService/UploadCSV";
const SMALL_CSV = new TextEncoder().encode(
  "Department Name,Date,Number of Sales\nToys,2024-01-01,3\nGames,2024-01-02,4\n",
);

/** Counts and sizes of each scenario; `--quick` shrinks them to check the harness. */
const SCALES = {
  full: {
    unauthenticatedCalls: 16,
    unauthenticatedBytes: 60 * MIB,
    loadClients: 64,
    /** Unset: the default MAX_MESSAGE_BYTES (64 MiB) and MAX_BUFFERED_BYTES (1 GiB). */
    loadEnv: {} as Record<string, string>,
    maxMessageBytes: 64 * MIB,
    maxBufferedBytes: 1024 * MIB,
    maxConcurrentUploads: 64,
    maxUploadsPerClient: 16,
    holderEnv: {} as Record<string, string>,
    uploadIdleTimeoutSec: 3,
    prefaceConnections: 500,
    webPrefaceConnections: 100,
    connectionIdleTimeoutSec: 10,
    prefaceCloseSec: PREFACE_CLOSE_SEC,
    resetPairs: 20_000,
    goawayRounds: 20,
    goawayConnections: 50,
    goawayIdleTimeoutSec: 1,
  },
  quick: {
    unauthenticatedCalls: 4,
    unauthenticatedBytes: 6 * MIB,
    loadClients: 8,
    loadEnv: { MAX_MESSAGE_BYTES: String(8 * MIB), MAX_BUFFERED_BYTES: String(64 * MIB) },
    maxMessageBytes: 8 * MIB,
    maxBufferedBytes: 64 * MIB,
    maxConcurrentUploads: 8,
    maxUploadsPerClient: 4,
    holderEnv: { MAX_CONCURRENT_UPLOADS: "8", MAX_UPLOADS_PER_CLIENT: "4" },
    uploadIdleTimeoutSec: 1,
    prefaceConnections: 50,
    webPrefaceConnections: 10,
    connectionIdleTimeoutSec: 2,
    prefaceCloseSec: 4,
    resetPairs: 2_000,
    goawayRounds: 3,
    goawayConnections: 10,
    goawayIdleTimeoutSec: 1,
  },
};
type Scale = typeof SCALES.full;

/** What each scenario adds to the report. */
interface ScenarioReport {
  metrics: BenchMetric[];
  checks: BenchCheck[];
  runs: unknown;
}

/** Scenario letters to run (`a`..`f`) when run as a script with some; empty: all. */
let onlyScenarios: string[] = [];

/** Runs the abuse benchmark; see the module doc. */
export async function abuseBench(ctx: BenchContext): Promise<BenchResult> {
  const scale = ctx.quick ? SCALES.quick : SCALES.full;
  const scenarios: [string, (scale: Scale, ctx: BenchContext) => Promise<ScenarioReport>][] = [
    ["a. unauthenticated uploads", unauthenticatedUploads],
    ["b. many large authenticated uploads", largeUploads],
    ["c. slot holding", slotHolding],
    ["d. preface-only connections", prefaceOnly],
    ["e. rapid reset", rapidReset],
    ["f. GOAWAY on idle connections", goawayRounds],
  ];
  const metrics: BenchMetric[] = [];
  const checks: BenchCheck[] = [];
  const runs: Record<string, unknown> = {};
  for (const [name, scenario] of scenarios) {
    if (onlyScenarios.length > 0 && !onlyScenarios.includes(name[0])) continue;
    ctx.log(`${name}...`);
    const started = performance.now();
    try {
      const report = await scenario(scale, ctx);
      metrics.push(...report.metrics);
      checks.push(...report.checks);
      runs[name] = report.runs;
    } catch (error) {
      // One broken scenario must not hide the others' figures.
      checks.push({ name: `${name} ran`, pass: false, detail: String(error) });
      runs[name] = { error: String(error) };
    }
    const peak = peakRssBytes();
    ctx.log(
      `  (${((performance.now() - started) / 1000).toFixed(1)} s` +
        (peak === null ? ")" : `; bench process peak RSS so far ${(peak / MB).toFixed(0)} MB)`),
    );
  }
  const clientPeak = peakRssBytes();
  if (clientPeak !== null) {
    metrics.push(metricOf("bench process peak RSS", "MB", [clientPeak / MB], false));
  }
  return {
    name: "abuse",
    description: `${ctx.quick ? "QUICK: " : ""}six abuse scenarios, a fresh server child process ` +
      `on loopback for each; 1 run each`,
    metrics,
    checks,
    runs,
  };
}

// ---------------------------------------------------------------------------------------------
// a. Unauthenticated uploads

async function unauthenticatedUploads(scale: Scale, ctx: BenchContext): Promise<ScenarioReport> {
  // One 60 MiB request, framed once and sent on every call.
  const frame = grpcFrame(toBinary(
    UploadRequestSchema,
    create(UploadRequestSchema, {
      data: new Uint8Array(scale.unauthenticatedBytes),
      filename: "unauthenticated.csv",
    }),
  ));
  const report: ScenarioReport = { metrics: [], checks: [], runs: {} };
  for (const protocol of ["grpc", "grpc-web"] as const) {
    await using server = await startServerProcess({ SALES_API_TOKEN: TOKEN });
    const url = urlOf(server, protocol);
    // Warm the refusal path, so the idle figure includes its code.
    await withSession(
      url,
      (session) => unaryCall(session, protocol, UPLOAD_PATH, grpcFrame(SMALL_CSV)),
    );
    const idleMb = server.memory().rssBytes / MB;
    server.resetPeak();
    // One connection each, as 16 separate clients.
    const sessions = await Promise.all(
      Array.from({ length: scale.unauthenticatedCalls }, () => openSession(url)),
    );
    let results: RawCallResult[];
    try {
      results = await Promise.all(
        sessions.map((session) =>
          unaryCall(session, protocol, UPLOAD_PATH, frame, { timeoutMs: 60_000 })
        ),
      );
    } finally {
      for (const session of sessions) session.destroy();
    }
    const peakMb = server.memory().peakBytes / MB;
    const wrong = results.filter((r) => r.status !== Status.UNAUTHENTICATED);
    const slowest = Math.max(...results.map((r) => r.ms));
    const label = protocol === "grpc" ? "native gRPC" : "gRPC-Web";
    ctx.log(
      `  ${label}: ${results.length} x ${mibOf(scale.unauthenticatedBytes)} MiB without a token: ` +
        `statuses ${countBy(results.map((r) => r.status))}, slowest ${slowest.toFixed(1)} ms; ` +
        `server RSS idle ${idleMb.toFixed(1)} MB, peak ${peakMb.toFixed(1)} MB`,
    );
    report.metrics.push(
      metricOf(`a. ${label}: refusal time`, "ms", results.map((r) => r.ms), false),
      metricOf(`a. ${label}: server peak RSS - idle`, "MB", [peakMb - idleMb], false),
    );
    report.checks.push(
      {
        name: `a. ${label}: each unauthenticated call refused with UNAUTHENTICATED in < ` +
          `${UNAUTHENTICATED_MS} ms`,
        pass: wrong.length === 0 && slowest < UNAUTHENTICATED_MS,
        detail: wrong.length === 0
          ? `${results.length}/${results.length} UNAUTHENTICATED, slowest ${slowest.toFixed(1)} ms`
          : `${wrong.length} not refused: ${describe(wrong[0])}`,
      },
      {
        name: `a. ${label}: server peak RSS <= idle + ${UNAUTHENTICATED_RSS_MB} MB`,
        pass: peakMb - idleMb <= UNAUTHENTICATED_RSS_MB,
        detail: `idle ${idleMb.toFixed(1)} MB, peak ${peakMb.toFixed(1)} MB (+${
          (peakMb - idleMb).toFixed(1)
        } MB)`,
      },
    );
    (report.runs as Record<string, unknown>)[protocol] = {
      idleMb,
      peakMb,
      results: results.map(({ status, ms }) => ({ status, ms })),
    };
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// b. Many large authenticated uploads

async function largeUploads(scale: Scale, ctx: BenchContext): Promise<ScenarioReport> {
  // The largest CSV whose UploadRequest fits in MAX_MESSAGE_BYTES.
  const filename = "large.csv";
  const csv = csvOfSize(scale.maxMessageBytes - 64);
  const message = toBinary(
    UploadRequestSchema,
    create(UploadRequestSchema, { data: csv, filename }),
  );
  if (message.length > scale.maxMessageBytes) throw new Error("The message is too large");
  const frame = grpcFrame(message);
  const aggregator = new SalesAggregator();
  aggregator.push(csv);
  const expected = aggregator.finish();
  const expectedCsv = formatResultCsv(expected.totals);

  await using server = await startServerProcess({
    SALES_API_TOKEN: TOKEN,
    TRUSTED_PROXIES: "127.0.0.1",
    ...scale.loadEnv,
  });
  const client = new GrpcSalesClient(server.grpcAddress, {
    metadata: { authorization: `Bearer ${TOKEN}` },
  });
  try {
    await client.upload(SMALL_CSV, "warm-up.csv");
    const idleMb = server.memory().rssBytes / MB;
    server.resetPeak();
    const protocols: WireProtocol[] = Array.from(
      { length: scale.loadClients },
      (_, i) => (i % 2 === 0 ? "grpc" : "grpc-web"),
    );
    const sessions = await Promise.all(protocols.map((p) => openSession(urlOf(server, p))));
    const started = performance.now();
    let results: RawCallResult[];
    try {
      results = await Promise.all(
        protocols.map((protocol, i) =>
          unaryCall(sessions[i], protocol, UPLOAD_PATH, frame, {
            metadata: { authorization: `Bearer ${TOKEN}`, "x-forwarded-for": clientAddress(i) },
            timeoutMs: 150_000,
          })
        ),
      );
    } finally {
      for (const session of sessions) session.destroy();
    }
    const seconds = (performance.now() - started) / 1000;
    const peakMb = server.memory().peakBytes / MB;
    const alive = isAlive(server.pid);

    const problems: string[] = [];
    let correct = 0;
    let pushedBack = 0;
    for (const [i, result] of results.entries()) {
      const who = `${protocols[i]} #${i}`;
      if (result.status === Status.OK) {
        const response = fromBinary(UploadResponseSchema, result.response ?? new Uint8Array());
        const counts = [response.rows, response.badRows, response.departments].map(Number);
        const want = [expected.rows, expected.badRows, expected.departments];
        const stored = new TextDecoder().decode(await client.downloadResult(response.resultId));
        if (counts.join() !== want.join()) problems.push(`${who}: counts ${counts} != ${want}`);
        else if (stored !== expectedCsv) {
          problems.push(`${who}: result ${response.resultId} differs`);
        } else correct++;
      } else if (result.status === Status.RESOURCE_EXHAUSTED && result.pushbackMs !== undefined) {
        pushedBack++;
      } else {
        problems.push(`${who}: ${describe(result)}`);
      }
    }
    // The README's bound (docs/security.md, "Memory bound"), term by term.
    const boundMb = idleMb + (BUFFERED_BYTES_FACTOR * scale.maxBufferedBytes) / MB +
      WAITING_WINDOWS_MB + HEAP_SLACK_MB + scale.maxConcurrentUploads * PER_UPLOAD_MB;
    const factor = (peakMb - idleMb) * MB / scale.maxBufferedBytes;
    const refusals = countBy(
      results.filter((r) => r.status === Status.RESOURCE_EXHAUSTED).map((r) =>
        r.message.replace(/\d+/g, "N")
      ),
    );
    ctx.log(
      `  ${results.length} x ${mibOf(frame.length)} MiB (${
        protocols.filter((p) => p === "grpc").length
      } ` +
        `native, ${protocols.filter((p) => p === "grpc-web").length} gRPC-Web) in ${
          seconds.toFixed(1)
        } s: ` +
        `${correct} correct, ${pushedBack} RESOURCE_EXHAUSTED with pushback, ${problems.length} wrong; ` +
        `server RSS idle ${idleMb.toFixed(1)} MB, peak ${peakMb.toFixed(1)} MB = idle + ` +
        `${factor.toFixed(2)} x MAX_BUFFERED_BYTES; refusals: ${refusals}`,
    );
    return {
      metrics: [
        metricOf("b. calls answered correctly", "calls", [correct], true, 0),
        metricOf("b. calls refused with pushback", "calls", [pushedBack], false, 0),
        metricOf("b. wall time", "s", [seconds], false),
        metricOf("b. server peak RSS", "MB", [peakMb], false),
        metricOf("b. server idle RSS", "MB", [idleMb], false),
        metricOf("b. (peak - idle) / MAX_BUFFERED_BYTES", "x", [factor], false, 2),
      ],
      checks: [
        {
          name: "b. no crash; each call correct or RESOURCE_EXHAUSTED with grpc-retry-pushback-ms",
          pass: alive && problems.length === 0 && correct > 0,
          detail:
            `${correct} correct, ${pushedBack} refused with pushback, ${problems.length} wrong` +
            (alive ? "" : ", SERVER GONE") +
            (problems.length > 0 ? `: ${problems.slice(0, 3).join("; ")}` : ""),
        },
        {
          name: `b. server peak RSS <= idle + ${BUFFERED_BYTES_FACTOR} x MAX_BUFFERED_BYTES + ` +
            `64 x 4 MiB + ${HEAP_SLACK_MB} MB + MAX_CONCURRENT_UPLOADS x ${PER_UPLOAD_MB} MB`,
          pass: peakMb <= boundMb,
          detail:
            `${peakMb.toFixed(1)} MB <= ${boundMb.toFixed(1)} MB (idle ${idleMb.toFixed(1)} MB, ` +
            `MAX_BUFFERED_BYTES ${mibOf(scale.maxBufferedBytes)} MiB; measured factor ${
              factor.toFixed(2)
            })`,
        },
      ],
      runs: {
        messageBytes: frame.length,
        maxBufferedBytes: scale.maxBufferedBytes,
        idleMb,
        peakMb,
        factor,
        seconds,
        refusals,
        results: results.map(({ status, ms, pushbackMs }, i) => ({
          protocol: protocols[i],
          status,
          ms,
          pushbackMs,
        })),
      },
    };
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// c. Slot holding

async function slotHolding(scale: Scale, ctx: BenchContext): Promise<ScenarioReport> {
  await using server = await startServerProcess({
    TRUSTED_PROXIES: "127.0.0.1",
    UPLOAD_IDLE_TIMEOUT_SEC: String(scale.uploadIdleTimeoutSec),
    ...scale.holderEnv,
  });
  const holder = new GrpcSalesClient(server.grpcAddress, {
    metadata: { "x-forwarded-for": "198.51.100.1" },
  });
  const other = new GrpcSalesClient(server.grpcAddress, {
    metadata: { "x-forwarded-for": "198.51.100.2" },
  });
  const idleMs = scale.uploadIdleTimeoutSec * 1000;
  try {
    // The holder asks for every upload the server allows in all.
    const starts = await Promise.allSettled(
      Array.from(
        { length: scale.maxConcurrentUploads },
        (_, i) => holder.startUpload(`hold-${i}.csv`, 0),
      ),
    );
    const held = starts.flatMap((s) => (s.status === "fulfilled" ? [s.value.uploadId] : []));
    const refused = starts.flatMap((s) => (s.status === "rejected" ? [s.reason] : []));
    const refusalOk = refused.every((error) =>
      error instanceof AppError && error.code === Status.RESOURCE_EXHAUSTED &&
      /MAX_UPLOADS_PER_CLIENT/.test(error.message) && pushbackOf(error) !== undefined
    );
    // One committed row each, then only empty appends.
    const row = new TextEncoder().encode("Toys,2024-01-01,1\n");
    const committedAt = new Map<string, number>();
    for (const uploadId of held) {
      await holder.appendUpload(uploadId, 0, row);
      committedAt.set(uploadId, performance.now());
    }
    const expiredAfterMs = new Map<string, number>();
    const wrongErrors: string[] = [];
    let emptyAppends = 0;
    let otherOutcome: string | undefined;
    const otherUpload = (async () => {
      try {
        const response = await other.uploadResumable([SMALL_CSV], "other.csv", SMALL_CSV.length);
        otherOutcome = response.rows === 2 ? "ok" : `rows ${response.rows}`;
      } catch (error) {
        otherOutcome = String(error);
      }
    })();
    const deadline = performance.now() + idleMs + 5000;
    while (expiredAfterMs.size < held.length && performance.now() < deadline) {
      await Promise.all(
        held.filter((id) => !expiredAfterMs.has(id)).map(async (uploadId) => {
          try {
            await holder.appendUpload(uploadId, row.length, new Uint8Array());
            emptyAppends++;
          } catch (error) {
            const ms = performance.now() - committedAt.get(uploadId)!;
            expiredAfterMs.set(uploadId, ms);
            if (
              !(error instanceof AppError && error.code === Status.NOT_FOUND &&
                /expired/.test(error.message))
            ) {
              wrongErrors.push(String(error));
            }
          }
        }),
      );
      await sleep(250);
    }
    await otherUpload;
    // Expired uploads free their slots: the holder may start again.
    const again = await holder.startUpload("again.csv", 0).then(
      () => "ok",
      (error) => String(error),
    );
    const expiry = [...expiredAfterMs.values()];
    const latest = expiry.length > 0 ? Math.max(...expiry) : Infinity;
    const earliest = expiry.length > 0 ? Math.min(...expiry) : 0;
    const expiredInTime = expiry.length === held.length && wrongErrors.length === 0 &&
      earliest >= idleMs && latest <= idleMs + 2000;
    ctx.log(
      `  holder got ${held.length} of ${starts.length} uploads (${refused.length} refused: ` +
        `${
          refused[0]?.message ?? "none"
        }); other client's upload: ${otherOutcome}; ${emptyAppends} ` +
        `empty appends; holder's uploads expired ${(earliest / 1000).toFixed(2)}-${
          (latest / 1000).toFixed(2)
        } s ` +
        `after their last bytes (idle timeout ${scale.uploadIdleTimeoutSec} s); start again: ${again}`,
    );
    return {
      metrics: [
        metricOf("c. uploads the holder got", "uploads", [held.length], false, 0),
        metricOf("c. holder's uploads expired after", "s", expiry.map((ms) => ms / 1000), false, 2),
      ],
      checks: [
        {
          name:
            `c. one client gets MAX_UPLOADS_PER_CLIENT (${scale.maxUploadsPerClient}) uploads, ` +
            `then RESOURCE_EXHAUSTED naming the limit, with pushback`,
          pass: held.length === scale.maxUploadsPerClient && refusalOk,
          detail: `${held.length} started, ${refused.length} refused: ${
            refused[0]?.message ?? "none"
          }`,
        },
        {
          name: "c. another client's upload succeeds while they are held",
          pass: otherOutcome === "ok",
          detail: otherOutcome ?? "no outcome",
        },
        {
          name: `c. held uploads expire ${scale.uploadIdleTimeoutSec} s after their last bytes ` +
            `despite empty appends (within 2 s)`,
          pass: expiredInTime && again === "ok",
          detail: `${expiry.length}/${held.length} expired after ${(earliest / 1000).toFixed(2)}-` +
            `${(latest / 1000).toFixed(2)} s, ${emptyAppends} empty appends accepted before` +
            (wrongErrors.length > 0 ? `; wrong errors: ${wrongErrors[0]}` : "") +
            `; a new upload afterwards: ${again}`,
        },
      ],
      runs: {
        held: held.length,
        refused: refused.length,
        refusal: refused[0]?.message,
        otherOutcome,
        emptyAppends,
        expiredAfterMs: expiry,
        again,
      },
    };
  } finally {
    holder.close();
    other.close();
  }
}

// ---------------------------------------------------------------------------------------------
// d. Preface-only connections

async function prefaceOnly(scale: Scale, ctx: BenchContext): Promise<ScenarioReport> {
  await using server = await startServerProcess({
    CONNECTION_IDLE_TIMEOUT_SEC: String(scale.connectionIdleTimeoutSec),
  });
  await using probe = await startProbe(server, 1000);
  const open = async (port: number, count: number) => {
    const connections: RawH2Connection[] = [];
    // In batches, as a client without a connection limit of its own would.
    for (let i = 0; i < count; i += 50) {
      connections.push(
        ...await Promise.all(
          Array.from(
            { length: Math.min(50, count - i) },
            () => RawH2Connection.open(port, { silent: true }),
          ),
        ),
      );
    }
    return connections;
  };
  const grpcConnections = await open(portOf(server.grpcAddress), scale.prefaceConnections);
  const webConnections = await open(
    Number(new URL(server.webUrl).port),
    scale.webPrefaceConnections,
  );
  const waitSec = scale.prefaceCloseSec + 2;
  const closedWithin = async (connections: RawH2Connection[]) => {
    const timeout = sleep(waitSec * 1000).then(() => undefined);
    const closes = await Promise.all(connections.map((c) => Promise.race([c.closed, timeout])));
    for (const c of connections) c.close();
    return closes;
  };
  const [grpcCloses, webCloses] = await Promise.all([
    closedWithin(grpcConnections),
    closedWithin(webConnections),
  ]);
  const calls = await probe.stop();
  const closedSec = grpcCloses.flatMap((c) => (c === undefined ? [] : [c.seconds]));
  const inTime = closedSec.filter((s) => s <= scale.prefaceCloseSec).length;
  const goaways = countBy(
    grpcCloses.map((c) => (c?.goaway === undefined ? "none" : `code ${c.goaway.errorCode}`)),
  );
  const webClosed =
    webCloses.filter((c) => c !== undefined && c.seconds <= scale.prefaceCloseSec).length;
  const peakMb = server.memory().peakBytes / MB;
  ctx.log(
    `  gRPC port: ${inTime}/${grpcConnections.length} preface-only connections closed within ` +
      `${scale.prefaceCloseSec} s (after ${fmtRange(closedSec)} s; GOAWAY ${goaways}); web port: ` +
      `${webClosed}/${webConnections.length} closed; normal calls ${calls.summary}; server peak RSS ` +
      `${peakMb.toFixed(1)} MB`,
  );
  return {
    metrics: [
      metricOf(
        "d. preface-only connection closed after",
        "s",
        closedSec.length > 0 ? closedSec : [Infinity],
        false,
        1,
      ),
      metricOf("d. web port: preface-only connections closed", "connections", [webClosed], true, 0),
      metricOf(
        "d. normal call latency",
        "ms",
        calls.latencies.length > 0 ? calls.latencies : [Infinity],
        false,
      ),
      metricOf("d. server peak RSS", "MB", [peakMb], false),
    ],
    checks: [
      {
        name:
          `d. all ${scale.prefaceConnections} preface-only connections to the gRPC port closed ` +
          `by the server within ${scale.prefaceCloseSec} s (CONNECTION_IDLE_TIMEOUT_SEC=${scale.connectionIdleTimeoutSec})`,
        pass: inTime === grpcConnections.length,
        detail: `${inTime}/${grpcConnections.length} closed, after ${
          fmtRange(closedSec)
        } s; GOAWAY ${goaways}`,
      },
      {
        name: "d. normal calls served throughout",
        pass: calls.failed === 0 && calls.ok > 0 && isAlive(server.pid),
        detail: calls.summary,
      },
    ],
    runs: {
      closedSec,
      goaways,
      webClosed,
      webConnections: webConnections.length,
      calls: calls.summary,
      peakMb,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// e. Rapid reset

async function rapidReset(scale: Scale, ctx: BenchContext): Promise<ScenarioReport> {
  await using server = await startServerProcess({});
  const report: ScenarioReport = { metrics: [], checks: [], runs: {} };
  for (const protocol of ["grpc", "grpc-web"] as const) {
    const port = protocol === "grpc"
      ? portOf(server.grpcAddress)
      : Number(new URL(server.webUrl).port);
    const label = protocol === "grpc" ? "gRPC port" : "web port";
    await using probe = await startProbe(server, 100);
    const burst = await resetBurst(port, protocol, scale.resetPairs, 60_000);
    const during = await probe.stop();
    await using after = await startProbe(server, 50);
    await sleep(500);
    const afterCalls = await after.stop();
    const alive = isAlive(server.pid);
    ctx.log(
      `  ${label}: ${burst.pairs} HEADERS+RST_STREAM pairs in ${burst.seconds.toFixed(2)} s over ` +
        `${burst.connections} connection(s) (GOAWAY ${burst.goaways}); calls during ${during.summary}; ` +
        `after ${afterCalls.summary}; server ${alive ? "up" : "GONE"}`,
    );
    report.metrics.push(
      metricOf(`e. ${label}: burst`, "pairs/s", [burst.pairs / burst.seconds], true, 0),
      metricOf(
        `e. ${label}: normal call latency during the burst`,
        "ms",
        during.latencies.length > 0 ? during.latencies : [Infinity],
        false,
      ),
    );
    report.checks.push({
      name: `e. ${label}: server up and normal calls served during and after ${scale.resetPairs} ` +
        `HEADERS+RST_STREAM pairs`,
      pass: alive && burst.pairs === scale.resetPairs && during.failed === 0 && during.ok > 0 &&
        afterCalls.failed === 0 && afterCalls.ok > 0,
      detail:
        `${burst.pairs} pairs in ${
          burst.seconds.toFixed(2)
        } s, ${burst.connections} connection(s), ` +
        `GOAWAY ${burst.goaways}; during: ${during.summary}; after: ${afterCalls.summary}` +
        (alive ? "" : "; SERVER GONE"),
    });
    (report.runs as Record<string, unknown>)[protocol] = {
      ...burst,
      during: during.summary,
      after: afterCalls.summary,
    };
  }
  report.metrics.push(
    metricOf("e. server peak RSS", "MB", [server.memory().peakBytes / MB], false),
  );
  return report;
}

/** Sends `pairs` HEADERS + RST_STREAM pairs to `port`, on new connections when one is closed. */
async function resetBurst(
  port: number,
  protocol: WireProtocol,
  pairs: number,
  timeLimitMs: number,
) {
  const headers = literalHeaderBlock([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", UPLOAD_PATH],
    [":authority", "127.0.0.1"],
    ["content-type", protocol === "grpc" ? "application/grpc" : "application/grpc-web+proto"],
    ["te", "trailers"],
  ]);
  const started = performance.now();
  const goaways: string[] = [];
  let sent = 0;
  let connections = 0;
  const BATCH = 500;
  while (sent < pairs && performance.now() - started < timeLimitMs && connections < 500) {
    const connection = await RawH2Connection.open(port);
    connections++;
    let streamId = 1;
    let closed = false;
    connection.closed.then(() => (closed = true));
    try {
      while (sent < pairs && !closed && streamId < 2 ** 31 - 2 * BATCH) {
        const count = Math.min(BATCH, pairs - sent);
        const frames: Uint8Array[] = [];
        for (let i = 0; i < count; i++, streamId += 2) {
          frames.push(
            frame(FrameType.HEADERS, Flag.END_HEADERS, streamId, headers),
            rstStream(streamId),
          );
        }
        await connection.send(concatBytes(frames));
        sent += count;
        // Wait until the server has read the batch: the burst then lasts as long as the server
        // takes to handle it, and normal calls are made meanwhile.
        if (!await connection.ping()) break;
      }
    } catch {
      // Closed by the server mid-write: the pairs of that write count as sent only if written.
    }
    connection.close();
    const close = await connection.closed;
    if (close.goaway !== undefined) goaways.push(`code ${close.goaway.errorCode}`);
  }
  return {
    pairs: sent,
    seconds: (performance.now() - started) / 1000,
    connections,
    goaways: goaways.length === 0 ? "none" : countBy(goaways),
  };
}

// ---------------------------------------------------------------------------------------------
// f. GOAWAY on idle connections

async function goawayRounds(scale: Scale, ctx: BenchContext): Promise<ScenarioReport> {
  const env = {
    CONNECTION_IDLE_TIMEOUT_SEC: String(scale.goawayIdleTimeoutSec),
    TRUSTED_PROXIES: "127.0.0.1",
  };
  let server: ServerProcess = await startServerProcess(env);
  let crashes = 0;
  const crashOutput: string[] = [];
  const failures: string[] = [];
  const rounds: {
    calls: number;
    failedCalls: number;
    goaways: number;
    closed: number;
    seconds: number;
  }[] = [];
  try {
    for (let round = 0; round < scale.goawayRounds; round++) {
      const started = performance.now();
      const url = urlOf(server, "grpc");
      const sessions = await Promise.all(
        Array.from(
          { length: scale.goawayConnections },
          () => openSession(url).catch(() => undefined),
        ),
      );
      const live = sessions.filter((s): s is ClientHttp2Session => s !== undefined);
      const goaway = live.map((session) =>
        new Promise<boolean>((resolve) => {
          session.once("goaway", () => resolve(true));
          session.once("close", () => resolve(false));
        })
      );
      const closed = live.map((session) =>
        new Promise<void>((resolve) => session.once("close", () => resolve()))
      );
      // Each connection is a client of its own (behind TRUSTED_PROXIES), so that the per-client
      // upload limit does not refuse calls that arrive together.
      const results = await Promise.all(
        live.map((session, i) =>
          unaryCall(session, "grpc", UPLOAD_PATH, grpcFrame(smallUploadMessage()), {
            metadata: { "x-forwarded-for": clientAddress(i) },
            timeoutMs: 10_000,
          })
        ),
      );
      for (const r of results.filter((r) => r.status !== Status.OK)) failures.push(describe(r));
      const failedCalls = results.filter((r) => r.status !== Status.OK).length +
        (sessions.length - live.length);
      // The server must close them once idle: wait for that, bounded.
      const limit = sleep((scale.goawayIdleTimeoutSec + 5) * 1000).then(() => "timeout" as const);
      const sawGoaway = await Promise.all(goaway.map((g) => Promise.race([g, limit])));
      const closedCount = (await Promise.all(closed.map((c) =>
        Promise.race([c.then(() => true), limit])
      ))).filter((c) =>
        c === true
      ).length;
      for (const session of live) session.destroy();
      rounds.push({
        calls: results.length,
        failedCalls,
        goaways: sawGoaway.filter((g) => g === true).length,
        closed: closedCount,
        seconds: (performance.now() - started) / 1000,
      });
      // Give a crash a moment to show.
      await sleep(200);
      if (!isAlive(server.pid)) {
        crashes++;
        crashOutput.push(server.output().slice(-2000));
        ctx.log(`  round ${round + 1}: the server crashed; starting a new one`);
        await Promise.resolve(server[Symbol.asyncDispose]()).catch(() => {});
        server = await startServerProcess(env);
      }
    }
  } finally {
    await server[Symbol.asyncDispose]();
  }
  const totalConnections = rounds.reduce((sum, r) => sum + r.calls, 0);
  const goaways = rounds.reduce((sum, r) => sum + r.goaways, 0);
  const closedByServer = rounds.reduce((sum, r) => sum + r.closed, 0);
  const failedCalls = rounds.reduce((sum, r) => sum + r.failedCalls, 0);
  ctx.log(
    `  ${rounds.length} rounds x ${scale.goawayConnections} connections: ${failedCalls} failed calls, ` +
      `${goaways} GOAWAY received, ${closedByServer} closed by the server; crashes: ${crashes}`,
  );
  return {
    metrics: [
      metricOf("f. server crashes", "crashes", [crashes], false, 0),
      metricOf("f. round time", "s", rounds.map((r) => r.seconds), false, 2),
    ],
    checks: [
      {
        name:
          `f. no server crash over ${scale.goawayRounds} rounds of idle connections closed with GOAWAY`,
        pass: crashes === 0 && goaways > 0,
        detail: `${crashes} crashes; ${goaways}/${totalConnections} connections got GOAWAY` +
          (crashOutput.length > 0 ? `; last output: ${crashOutput[0].slice(-300)}` : ""),
      },
      {
        name:
          `f. every idle connection closed by the server after CONNECTION_IDLE_TIMEOUT_SEC=${scale.goawayIdleTimeoutSec}, ` +
          `every call served`,
        pass: closedByServer === totalConnections && failedCalls === 0,
        detail:
          `${closedByServer}/${totalConnections} closed by the server, ${goaways} with GOAWAY, ${failedCalls} failed calls` +
          (failures.length > 0 ? ` (${countBy(failures.slice(0, 50))})` : ""),
      },
    ],
    runs: { crashes, rounds, crashOutput, failures: failures.slice(0, 20) },
  };
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/** A bounded loop of normal calls (small authenticated-if-needed uploads on both transports). */
interface Probe extends AsyncDisposable {
  stop(): Promise<{ ok: number; failed: number; latencies: number[]; summary: string }>;
}

/** Makes a small upload on each transport every `intervalMs` until stopped (at most 10 minutes). */
async function startProbe(server: ServerProcess, intervalMs: number): Promise<Probe> {
  const client = new GrpcSalesClient(server.grpcAddress);
  const web = await openSession(server.webUrl);
  const latencies: number[] = [];
  const errors: string[] = [];
  let ok = 0;
  let stopping = false;
  const loop = (async () => {
    const until = performance.now() + 600_000;
    while (!stopping && performance.now() < until) {
      const started = performance.now();
      const outcomes = await Promise.all([
        client.upload(SMALL_CSV, "probe.csv").then(
          (r) => (r.rows === 2 ? "ok" : `rows ${r.rows}`),
          String,
        ),
        unaryCall(web, "grpc-web", UPLOAD_PATH, grpcFrame(smallUploadMessage()), {
          timeoutMs: 10_000,
        })
          .then((r) => (r.status === Status.OK ? "ok" : describe(r))),
      ]);
      latencies.push(performance.now() - started);
      for (const outcome of outcomes) {
        if (outcome === "ok") ok++;
        else errors.push(outcome);
      }
      await sleep(Math.max(0, intervalMs - (performance.now() - started)));
    }
  })();
  let result: Awaited<ReturnType<Probe["stop"]>> | undefined;
  const stop = async () => {
    if (result !== undefined) return result;
    stopping = true;
    await loop;
    client.close();
    web.destroy();
    const slowest = latencies.length > 0 ? Math.max(...latencies) : NaN;
    result = {
      ok,
      failed: errors.length,
      latencies,
      summary:
        `${ok} ok, ${errors.length} failed (median ${
          latencies.length > 0 ? median(latencies).toFixed(0) : "-"
        } ms, slowest ${slowest.toFixed(0)} ms)` + (errors.length > 0 ? `: ${errors[0]}` : ""),
    };
    return result;
  };
  return { stop, [Symbol.asyncDispose]: async () => void await stop() };
}

let smallMessage: Uint8Array | undefined;
function smallUploadMessage(): Uint8Array {
  smallMessage ??= toBinary(
    UploadRequestSchema,
    create(UploadRequestSchema, { data: SMALL_CSV, filename: "probe.csv" }),
  );
  return smallMessage;
}

/** A sales CSV of at most `bytes` bytes: 997 departments, valid dates, a few bad rows. */
function csvOfSize(bytes: number): Uint8Array {
  const encoder = new TextEncoder();
  const out = new Uint8Array(bytes);
  let at = encoder.encodeInto("Department Name,Date,Number of Sales\n", out).written;
  for (let i = 0;; i++) {
    const line = i % 100_003 === 99_999
      ? `Dept ${i % 997},2023-02-29,${i % 50}\n` // not a date: a bad row
      : `Dept ${i % 997},2024-${String(1 + (i % 12)).padStart(2, "0")}-${
        String(1 + (i % 28)).padStart(2, "0")
      },${i % 50}\n`;
    if (at + line.length > bytes) break;
    at += encoder.encodeInto(line, out.subarray(at)).written;
  }
  return out.subarray(0, at);
}

function urlOf(server: ServerProcess, protocol: WireProtocol): string {
  return protocol === "grpc" ? `http://${server.grpcAddress}` : server.webUrl;
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/** A distinct documentation address (RFC 5737) per client. */
function clientAddress(i: number): string {
  return `198.51.100.${1 + (i % 250)}`;
}

/** Whether process `pid` is running (not gone, not a zombie). */
function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function withSession<T>(
  url: string,
  use: (session: ClientHttp2Session) => Promise<T>,
): Promise<T> {
  const session = await openSession(url);
  try {
    return await use(session);
  } finally {
    session.destroy();
  }
}

function pushbackOf(error: AppError): string | undefined {
  const metadata = (error.cause as { metadata?: { get(key: string): unknown[] } } | undefined)
    ?.metadata;
  const value = metadata?.get(RETRY_PUSHBACK_HEADER)[0];
  return value === undefined ? undefined : String(value);
}

function describe(result: RawCallResult): string {
  return `status ${result.status} "${result.message}" after ${result.ms.toFixed(0)} ms`;
}

function countBy(values: readonly (string | number)[]): string {
  const counts = new Map<string | number, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return [...counts].map(([value, count]) => `${value} x${count}`).join(", ") || "none";
}

function fmtRange(values: readonly number[]): string {
  if (values.length === 0) return "-";
  return `${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)}`;
}

function mibOf(bytes: number): string {
  return (bytes / MIB).toFixed(0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (import.meta.main) {
  // `deno run -A bench/abuse_bench.ts [--quick] [a] [c] ...` runs only the scenarios named.
  onlyScenarios = Deno.args.filter((arg) => /^[a-f]$/.test(arg));
  const { runAsScript } = await import("./_report.ts");
  await runAsScript(abuseBench);
}
