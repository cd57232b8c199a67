/**
 * Three replicas of the service (`server/main.ts` children on loopback, one shared `STORAGE_DIR`,
 * distinct `REPLICA_ID`s) behind a real proxy: nginx with `deploy/nginx/`, the stand-in for
 * envoy.yaml. About 10 s, part of `deno task test`; alone: `deno test -A deploy/replicas_test.ts`.
 * Without nginx the test is skipped with a notice, except under `CI=true`, where it fails.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename } from "node:path";
import { aggregateFileParallel } from "../server/aggregate/parallel_aggregate.ts";
import { resultCsvChunks } from "../server/aggregate/result_csv.ts";
import { AppError, Status } from "../server/errors.ts";
import { GrpcSalesClient } from "../server/grpc/sales_client.ts";
import { mulberry32 } from "../server/_test_mulberry32.ts";
import { createGrpcWebSalesClient, uploadFile } from "../browser/upload_client.ts";
import { findNginx, type NginxProxy, startNginxProxy } from "./_nginx_proxy.ts";
import { type ReplicaProcess, startReplica } from "./_replica_process.ts";

const REPLICA_IDS = ["replica-a", "replica-b", "replica-c"];
/** Per-replica settings every replica of the test shares. */
const REPLICA_ENV = {
  // All uploads come from one address (nginx on 127.0.0.1); 24 at once must not hit the limit.
  MAX_UPLOADS_PER_CLIENT: "64",
  TRUSTED_PROXIES: "127.0.0.1",
};
const CHUNK_BYTES = 64 * 1024;
const nginx = await findNginx();
const inCi = Deno.env.get("CI") === "true";
if (nginx === undefined && !inCi) {
  console.warn(
    "deploy/replicas_test.ts: nginx not found (apt-get install nginx): multi-replica test skipped",
  );
}

/** A department name list with the CSV's awkward cases: quotes, commas, non-ASCII. */
const DEPARTMENTS = [
  "Toys",
  "Garden",
  "Books",
  '"Home, Kitchen"',
  '"Say ""hi"""',
  "Électronique",
  "Shoes",
  "Sports",
];

/** A sales CSV of about `bytes`, different for each seed, with a few bad rows. */
function salesCsv(seed: number, bytes: number): Uint8Array {
  const random = mulberry32(seed);
  const lines = ["Department Name,Date,Number of Sales"];
  let size = lines[0].length;
  while (size < bytes) {
    const roll = random();
    const line = roll % 97 === 0
      ? "Toys,2024-01-01,not-a-number"
      : `${DEPARTMENTS[roll % DEPARTMENTS.length]},2024-0${1 + (roll % 9)}-1${roll % 10},${
        roll % 1000
      }`;
    lines.push(line);
    size += line.length + 1;
  }
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

/** What `deno task aggregate` writes for `path`: the same functions, in-process. */
async function aggregateCommandResult(path: string): Promise<string> {
  const result = await aggregateFileParallel(path);
  const pieces = [...resultCsvChunks(result.departmentTotals)];
  return new TextDecoder().decode(await new Blob(pieces).bytes());
}

function* slices(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += size) {
    yield bytes.subarray(offset, offset + size);
  }
}

/** The replica id an upload id names (`<32 hex>.<replica id>`). */
function holderOf(uploadId: string): string {
  const match = /^[0-9a-f]{32}\.(.+)$/.exec(uploadId);
  assert.ok(match, `upload id ${uploadId} names no replica`);
  return match[1];
}

interface Cluster {
  storageDir: string;
  inputDir: string;
  replicas: ReplicaProcess[];
  proxy: NginxProxy;
  grpcThroughProxy: GrpcSalesClient;
}

async function startCluster(): Promise<Cluster> {
  const storageDir = await Deno.makeTempDir({ prefix: "replicas_storage_" });
  const inputDir = await Deno.makeTempDir({ prefix: "replicas_input_" });
  const replicas = await Promise.all(
    REPLICA_IDS.map((replicaId) => startReplica({ replicaId, storageDir, env: REPLICA_ENV })),
  );
  const proxy = await startNginxProxy(nginx!, replicas.map((replica) => replica.ports));
  return {
    storageDir,
    inputDir,
    replicas,
    proxy,
    grpcThroughProxy: new GrpcSalesClient(`127.0.0.1:${proxy.h2Port}`),
  };
}

async function stopCluster(cluster: Cluster): Promise<void> {
  cluster.grpcThroughProxy.close();
  await cluster.proxy.stop();
  await Promise.all(cluster.replicas.map((replica) => replica.stop("SIGKILL")));
  await Deno.remove(cluster.storageDir, { recursive: true });
  await Deno.remove(cluster.inputDir, { recursive: true });
}

/** Restarts replica `index` on its ports with its id (a deploy, or a crash and restart). */
async function restart(cluster: Cluster, index: number, signal: Deno.Signal): Promise<void> {
  const old = cluster.replicas[index];
  await old.stop(signal);
  cluster.replicas[index] = await startReplica({
    replicaId: old.replicaId,
    storageDir: cluster.storageDir,
    ports: old.ports,
    env: REPLICA_ENV,
  });
}

/** An input file and the result `deno task aggregate` gives for it. */
interface Input {
  path: string;
  bytes: Uint8Array;
  expected: string;
}

async function makeInput(cluster: Cluster, seed: number, size: number): Promise<Input> {
  const path = `${cluster.inputDir}/sales-${seed}.csv`;
  const bytes = salesCsv(seed, size);
  await Deno.writeFile(path, bytes);
  return { path, bytes, expected: await aggregateCommandResult(path) };
}

Deno.test({
  name: "replicas behind nginx share results and keep each chunked upload on its replica",
  ignore: nginx === undefined && !inCi,
}, async (t) => {
  assert.ok(nginx, "nginx is required under CI=true: apt-get install nginx");
  const cluster = await startCluster();
  const { replicas, proxy } = cluster;
  const decoder = new TextDecoder();
  const resultIds: { resultId: string; expected: string }[] = [];
  try {
    await t.step(
      "24 concurrent chunked uploads, half gRPC and half gRPC-Web, all succeed and match deno task aggregate",
      async () => {
        const inputs = await Promise.all(
          Array.from({ length: 24 }, (_, i) => makeInput(cluster, 1000 + i, 200_000 + i * 7_000)),
        );
        const pageClient = createGrpcWebSalesClient(`http://127.0.0.1:${proxy.h1Port}`);
        const holders = new Map<string, number>();
        const outcomes = await Promise.all(inputs.map(async (input, i) => {
          if (i % 2 === 0) {
            // gRPC through nginx's HTTP/2 listener: the CLI's --chunked path.
            let holder = "";
            const client = cluster.grpcThroughProxy;
            const routingKey = crypto.randomUUID();
            const { uploadId } = await client.startUpload(
              basename(input.path),
              input.bytes.length,
              routingKey,
            );
            holder = holderOf(uploadId);
            let offset = 0;
            for (const chunk of slices(input.bytes, CHUNK_BYTES)) {
              offset = (await client.appendUpload(uploadId, offset, chunk, routingKey))
                .committedOffset;
            }
            const response = await client.finishUpload(uploadId, routingKey);
            const data = await client.downloadResult(response.resultId);
            return { holder, resultId: response.resultId, csv: decoder.decode(data) };
          }
          // gRPC-Web through nginx's HTTP/1.1 listener: the page's own upload loop.
          const file = new File([input.bytes as Uint8Array<ArrayBuffer>], basename(input.path));
          const summary = await uploadFile(pageClient, file, {
            compress: false,
            maxChunkBytes: CHUNK_BYTES,
            attempts: 1,
          });
          return {
            holder: "",
            resultId: summary.resultId,
            csv: decoder.decode(summary.resultCsv),
          };
        }));
        for (const [i, outcome] of outcomes.entries()) {
          assert.equal(outcome.csv, inputs[i].expected, `upload ${i}`);
          resultIds.push({ resultId: outcome.resultId, expected: inputs[i].expected });
          if (outcome.holder !== "") {
            holders.set(outcome.holder, (holders.get(outcome.holder) ?? 0) + 1);
          }
        }
        // The keys spread the uploads over the replicas (24 random keys: all on one has p < 1e-10).
        assert.ok(holders.size >= 2, `gRPC uploads held by ${[...holders.keys()]}`);
      },
    );

    await t.step(
      "every result downloads from each replica directly and through nginx",
      async () => {
        for (const { resultId, expected } of resultIds) {
          for (const replica of replicas) {
            const response = await fetch(
              `http://127.0.0.1:${replica.ports.http}/results/${resultId}.csv`,
            );
            assert.equal(response.status, 200, `${resultId} from ${replica.replicaId}`);
            assert.equal(await response.text(), expected);
            const direct = new GrpcSalesClient(`127.0.0.1:${replica.ports.grpc}`);
            try {
              assert.equal(decoder.decode(await direct.downloadResult(resultId)), expected);
            } finally {
              direct.close();
            }
          }
          const viaProxy = await fetch(`http://127.0.0.1:${proxy.h1Port}/results/${resultId}.csv`);
          assert.equal(viaProxy.status, 200);
          assert.equal(await viaProxy.text(), expected);
        }
      },
    );

    await t.step("/metrics of the replicas add up to the 24 uploads", async () => {
      const texts = await Promise.all(replicas.map(async (replica) => {
        const response = await fetch(`http://127.0.0.1:${replica.ports.http}/metrics`);
        const text = await response.text();
        return response.status === 404 ? undefined : { replica, status: response.status, text };
      }));
      if (texts.some((entry) => entry === undefined)) {
        console.warn(
          "deploy/replicas_test.ts: the replicas serve no /metrics: metrics not checked",
        );
        return;
      }
      const sum = (name: string, labels: string) =>
        texts.reduce((total, entry) => total + metricValue(entry!.text, name, labels), 0);
      for (const entry of texts) {
        assert.equal(entry!.status, 200);
        assert.equal(
          metricValue(entry!.text, "sales_replica_info", `replica="${entry!.replica.replicaId}"`),
          1,
        );
        assert.equal(metricValue(entry!.text, "sales_uploads_in_progress", ""), 0);
      }
      assert.equal(sum("sales_uploads_finished_total", 'transport="grpc"'), 12);
      assert.equal(sum("sales_uploads_finished_total", 'transport="grpc-web"'), 12);
      assert.equal(sum("sales_results_stored_total", ""), 24);
      // Each replica counts only what it did: more than one took part.
      const busy = texts.filter((entry) =>
        metricValue(entry!.text, "sales_results_stored_total", "") > 0
      );
      assert.ok(busy.length >= 2, `results stored by ${busy.length} replica(s)`);
    });
    await t.step(
      "a call that reaches the wrong replica gets NOT_FOUND naming where the upload is",
      async () => {
        const holder = new GrpcSalesClient(`127.0.0.1:${replicas[0].ports.grpc}`);
        const other = new GrpcSalesClient(`127.0.0.1:${replicas[1].ports.grpc}`);
        try {
          const { uploadId } = await holder.startUpload("misrouted.csv", 0);
          assert.equal(holderOf(uploadId), "replica-a");
          await assert.rejects(
            other.appendUpload(uploadId, 0, new TextEncoder().encode("Toys,2024-01-01,1\n")),
            (error: unknown) =>
              error instanceof AppError && error.code === Status.NOT_FOUND &&
              /is not on this replica \(replica-b\): replica replica-a holds it/.test(
                error.message,
              ),
          );
          await holder.cancelUpload(uploadId);
        } finally {
          holder.close();
          other.close();
        }
      },
    );

    await t.step(
      "a replica killed mid-upload fails only the uploads it held, each with a clear status",
      async () => {
        const inputs = await Promise.all(
          Array.from({ length: 9 }, (_, i) => makeInput(cluster, 2000 + i, 150_000)),
        );
        const client = cluster.grpcThroughProxy;
        // Every upload started and its first chunk committed, on whichever replica its key picks.
        const started = await Promise.all(inputs.map(async (input) => {
          const routingKey = crypto.randomUUID();
          const { uploadId } = await client.startUpload(
            basename(input.path),
            input.bytes.length,
            routingKey,
          );
          const first = await client.appendUpload(
            uploadId,
            0,
            input.bytes.subarray(0, CHUNK_BYTES),
            routingKey,
          );
          return { input, routingKey, uploadId, committed: first.committedOffset };
        }));
        const counts = new Map<string, number>();
        for (const { uploadId } of started) {
          counts.set(holderOf(uploadId), (counts.get(holderOf(uploadId)) ?? 0) + 1);
        }
        const victimId = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
        assert.ok(counts.get(victimId)! < started.length, "every upload on one replica");
        const victim = REPLICA_IDS.indexOf(victimId);
        await replicas[victim].stop("SIGKILL");

        const outcomes = await Promise.allSettled(started.map(async (upload) => {
          let offset = upload.committed;
          for (const chunk of slices(upload.input.bytes.subarray(offset), CHUNK_BYTES)) {
            offset = (await client.appendUpload(upload.uploadId, offset, chunk, upload.routingKey))
              .committedOffset;
          }
          const response = await client.finishUpload(upload.uploadId, upload.routingKey);
          return decoder.decode(await client.downloadResult(response.resultId));
        }));
        for (const [i, outcome] of outcomes.entries()) {
          const heldByVictim = holderOf(started[i].uploadId) === victimId;
          if (!heldByVictim) {
            assert.equal(
              outcome.status,
              "fulfilled",
              String((outcome as PromiseRejectedResult).reason),
            );
            assert.equal(outcome.value, started[i].input.expected);
            continue;
          }
          assert.equal(outcome.status, "rejected", `upload ${i} on the killed replica succeeded`);
          const error = outcome.reason;
          assert.ok(error instanceof AppError, String(error));
          // nginx skips the dead replica: the key's next replica says the upload is not there.
          // A call already on its way when the replica died gets UNAVAILABLE instead.
          const clear = (error.code === Status.NOT_FOUND &&
            new RegExp(`is not on this replica \\(.+\\): replica ${victimId} holds it`).test(
              error.message,
            )) || error.code === Status.UNAVAILABLE;
          assert.ok(clear, `upload ${i}: ${error.code} ${error.message}`);
        }
        await restart(cluster, victim, "SIGKILL");
      },
    );

    await t.step(
      "a replica restarted during another replica's large result write keeps that temp file",
      async () => {
        // Replica a writes a result of 400 000 departments (about 9 MB) while b restarts. A
        // watcher process stops a (SIGSTOP) the moment its temp file appears, so b's start-up
        // certainly overlaps the write; then a resumes and finishes.
        const writer = 0, restarted = 1;
        const departments = 400_000;
        const lines = ["Department Name,Date,Number of Sales"];
        for (let i = 0; i < departments; i++) lines.push(`Dept ${i},2024-01-01,${i % 89}`);
        const bytes = new TextEncoder().encode(lines.join("\n") + "\n");
        const resultsDir = `${cluster.storageDir}/results`;
        // A leftover of b's own (a crash mid-write): its restart must remove this one.
        const ownLeftover = `${resultsDir}/.tmp-${"e".repeat(32)}-replica-b`;
        await Deno.writeTextFile(ownLeftover, "Toys,");

        let caught: string | undefined;
        for (let attempt = 1; attempt <= 5 && caught === undefined; attempt++) {
          const watcher = watchForTempFile(resultsDir, replicas[writer]);
          const client = new GrpcSalesClient(`127.0.0.1:${replicas[writer].ports.grpc}`);
          const upload = client.uploadStream(slices(bytes, 256 * 1024), "many-departments.csv");
          const seen = await watcher.result;
          if (seen !== undefined) {
            caught = seen;
            await restart(cluster, restarted, "SIGTERM");
            assert.ok(
              await exists(`${resultsDir}/${seen}`),
              `replica b's start-up deleted replica a's temp file ${seen}:\n${
                replicas[restarted].output()
              }`,
            );
            assert.ok(!(await exists(ownLeftover)), "replica b kept its own leftover temp file");
            Deno.kill(replicas[writer].pid, "SIGCONT");
          }
          const response = await upload;
          client.close();
          await watcher.done;
          assert.equal(response.departments, departments);
          assert.ok(!(await exists(`${resultsDir}/${seen}`)), "temp file left after the write");
          const stored = await fetch(
            `http://127.0.0.1:${replicas[restarted].ports.http}/results/${response.resultId}.csv`,
          );
          assert.equal(stored.status, 200);
          assert.equal((await stored.text()).split("\n").length, departments + 2);
        }
        assert.ok(caught, "the watcher never caught replica a's temp file in 5 attempts");
      },
    );
  } catch (error) {
    for (const replica of replicas) {
      console.error(`--- ${replica.replicaId} ---\n${replica.output()}`);
    }
    console.error(`--- nginx ---\n${await proxy.errorLog()}`);
    throw error;
  } finally {
    await stopCluster(cluster);
  }
});

/**
 * The sum of the samples of `name` whose labels include `labels` (`key="value"`, or "" for all)
 * in Prometheus text; 0 when there is none.
 */
function metricValue(text: string, name: string, labels: string): number {
  let total = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    if (labels !== "" && !(match[2] ?? "").split(",").includes(labels)) continue;
    total += Number(match[3]);
  }
  return total;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * A child process that spins on the results folder and stops `replica` (SIGSTOP) as soon as a
 * temp file of its appears; `result` is the file's name when it was still there once the replica
 * stood still, undefined when the write was over first (or nothing appeared within 20 s). A
 * separate process, because the test's own event loop carries the upload meanwhile.
 */
function watchForTempFile(resultsDir: string, replica: ReplicaProcess) {
  const script = `
    const [dir, pid, suffix] = Deno.args;
    const pattern = new RegExp("^\\\\.tmp-[0-9a-f]{32}-" + suffix + "$");
    const deadline = Date.now() + 20000;
    let found = "";
    while (found === "" && Date.now() < deadline) {
      for (const entry of Deno.readDirSync(dir)) {
        if (pattern.test(entry.name)) { found = entry.name; break; }
      }
    }
    if (found !== "") {
      Deno.kill(Number(pid), "SIGSTOP");
      let still = true;
      try { Deno.statSync(dir + "/" + found); } catch { still = false; }
      if (!still) Deno.kill(Number(pid), "SIGCONT");
      console.log(still ? found : "");
    }
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script, resultsDir, String(replica.pid), replica.replicaId],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const done = child.output();
  return {
    done,
    result: done.then(({ stdout }) => new TextDecoder().decode(stdout).trim() || undefined),
  };
}
