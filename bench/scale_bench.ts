/**
 * Scale-out benchmark: aggregate upload throughput through a real proxy (nginx with
 * `deploy/nginx/`, the stand-in for envoy.yaml) in front of 1, 2 and 3 replicas
 * (`server/main.ts` children on loopback sharing one `STORAGE_DIR`), on this machine.
 *
 * Each round sends {@linkcode UPLOADS} uploads of a generated CSV at once through nginx's HTTP/2
 * listener: half streaming (`UploadCSVStream`, 256 KiB messages), half chunked (4 MiB
 * `AppendUpload`s with one `x-upload-id` per upload, which nginx hashes to a replica). Reported:
 * the aggregate throughput (all bytes over the round's wall time) per replica count, and one
 * upload alone directly to a replica and through nginx (the proxy's own cost). Every result must
 * equal the aggregate command's byte for byte.
 *
 * Replicas add throughput only where there are cores to run them: the work is CPU-bound (parsing
 * and summing in one thread per upload), so on a 2-core machine 2 or 3 replicas share the same
 * two cores as one, and the figures stay flat. On paper, see docs/deployment.md, Scaling out.
 *
 * Run alone with `deno run -A bench/scale_bench.ts [--quick]`, or `deno task bench scale`.
 * Needs nginx (`apt-get install nginx`); without it the benchmark fails with that advice.
 *
 * @module
 */

import { formatResultCsv } from "../server/aggregate/_reference.ts";
import { aggregateInputFile } from "../server/aggregate/sales_input.ts";
import { GrpcSalesClient } from "../server/grpc/sales_client.ts";
import { findNginx, startNginxProxy } from "../deploy/_nginx_proxy.ts";
import { type ReplicaProcess, startReplica } from "../deploy/_replica_process.ts";
import {
  type BenchCheck,
  type BenchContext,
  type BenchMetric,
  type BenchResult,
  metricOf,
  runAsScript,
} from "./_report.ts";
import { ensureSalesCsv } from "./generate_sales_csv.ts";

/** Replica counts measured. */
export const REPLICA_COUNTS = [1, 2, 3] as const;
/** Uploads sent at once per round: enough to keep 3 replicas busy, as many hash keys as uploads. */
export const UPLOADS = 12;
/** Rounds per replica count; the best and median are reported. */
const ROUNDS = 2;
const CHUNK_BYTES = 4 * 1024 * 1024;
const MESSAGE_BYTES = 256 * 1024;
/** 400,000 generated rows are about 10.5 MB. */
const FULL_ROWS = 400_000;
const QUICK_ROWS = 40_000;

function* slices(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += size) {
    yield bytes.subarray(offset, offset + size);
  }
}

/** One upload of `bytes`, streaming or chunked; resolves to the result CSV. */
async function uploadOnce(
  client: GrpcSalesClient,
  bytes: Uint8Array,
  chunked: boolean,
): Promise<string> {
  const response = chunked
    ? await client.uploadResumable(slices(bytes, CHUNK_BYTES), "scale.csv", bytes.length)
    : await client.uploadStream(slices(bytes, MESSAGE_BYTES), "scale.csv");
  return new TextDecoder().decode(await client.downloadResult(response.resultId));
}

/** Runs the scale benchmark. */
export async function scaleBench(ctx: BenchContext): Promise<BenchResult> {
  const nginx = await findNginx();
  if (nginx === undefined) {
    throw new Error("deno task bench scale needs nginx: apt-get install nginx");
  }
  const rows = ctx.quick ? QUICK_ROWS : FULL_ROWS;
  const input = await ensureSalesCsv(rows);
  const bytes = await Deno.readFile(input.path);
  const expected = formatResultCsv((await aggregateInputFile(input.path)).totals);
  const megabytes = bytes.length / 1e6;
  ctx.log(`scale: ${megabytes.toFixed(1)} MB per upload, ${UPLOADS} at once, ${ROUNDS} rounds`);

  const metrics: BenchMetric[] = [];
  const runs: Record<string, number[]> = {};
  let wrong = 0;
  let failed = 0;
  const check = (csv: string) => {
    if (csv !== expected) wrong++;
  };

  for (const count of REPLICA_COUNTS) {
    const storageDir = await Deno.makeTempDir({ prefix: "scale_bench_" });
    const replicas: ReplicaProcess[] = [];
    let proxy;
    try {
      for (let i = 0; i < count; i++) {
        replicas.push(
          await startReplica({
            replicaId: `scale-${i}`,
            storageDir,
            // One process stands in for every client.
            env: { MAX_UPLOADS_PER_CLIENT: String(UPLOADS * 2) },
          }),
        );
      }
      proxy = await startNginxProxy(nginx, replicas.map((replica) => replica.ports));
      const viaProxy = new GrpcSalesClient(`127.0.0.1:${proxy.h2Port}`);
      try {
        if (count === 1) {
          // The proxy's own cost: one upload alone, directly and through nginx (after a warm-up).
          const direct = new GrpcSalesClient(`127.0.0.1:${replicas[0].ports.grpc}`);
          try {
            check(await uploadOnce(direct, bytes, false));
            for (const [name, client] of [["direct", direct], ["via nginx", viaProxy]] as const) {
              const values: number[] = [];
              for (let round = 0; round < ROUNDS; round++) {
                const started = performance.now();
                check(await uploadOnce(client, bytes, false));
                values.push(megabytes / ((performance.now() - started) / 1000));
              }
              runs[`single upload ${name}`] = values;
              metrics.push(metricOf(`one upload alone, ${name}`, "MB/s", values, true));
            }
          } finally {
            direct.close();
          }
        } else {
          // Warm-up: the new replicas compile their hot paths.
          await Promise.all(
            Array.from({ length: count * 2 }, (_, i) => uploadOnce(viaProxy, bytes, i % 2 === 0)),
          ).then((results) => results.forEach(check));
        }
        const values: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          const started = performance.now();
          const outcomes = await Promise.allSettled(
            Array.from({ length: UPLOADS }, (_, i) => uploadOnce(viaProxy, bytes, i % 2 === 1)),
          );
          const seconds = (performance.now() - started) / 1000;
          for (const outcome of outcomes) {
            if (outcome.status === "fulfilled") check(outcome.value);
            else {
              failed++;
              ctx.log(`scale: upload failed: ${outcome.reason}`);
            }
          }
          values.push((UPLOADS * megabytes) / seconds);
          ctx.log(
            `scale: ${count} replica(s), round ${round + 1}: ${values.at(-1)!.toFixed(1)} MB/s`,
          );
        }
        runs[`${count} replicas`] = values;
        metrics.push(
          metricOf(`${UPLOADS} uploads at once, ${count} replica(s)`, "MB/s", values, true),
        );
      } finally {
        viaProxy.close();
      }
    } finally {
      await proxy?.stop();
      await Promise.all(replicas.map((replica) => replica.stop("SIGTERM")));
      await Deno.remove(storageDir, { recursive: true });
    }
  }

  const byCount = (count: number) =>
    metrics.find((metric) => metric.name.endsWith(`${count} replica(s)`))!.median;
  const checks: BenchCheck[] = [
    {
      name: "every upload succeeds with the aggregate command's result",
      pass: wrong === 0 && failed === 0,
      detail: `${failed} failed, ${wrong} wrong`,
    },
  ];
  return {
    name: "scale",
    description: `${UPLOADS} uploads of ${
      megabytes.toFixed(1)
    } MB at once through nginx, 1-3 replicas, ${navigator.hardwareConcurrency} cores; 3 vs 1 replica: ${
      (byCount(3) / byCount(1)).toFixed(2)
    }x (median)`,
    metrics,
    checks,
    runs,
  };
}

if (import.meta.main) await runAsScript(scaleBench);
