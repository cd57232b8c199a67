/**
 * Fault tests: a client process killed mid-upload, the server stopped by SIGTERM during
 * uploads, result storage full or not writable, and chunks replayed, reordered or dropped on the
 * resumable path. Whole servers run on loopback, in-process (`startServer`, when the test needs to
 * see inside) or as `server/main.ts` child processes (signals, restarts), with real grpc-js clients.
 * Every stored result is compared with what the aggregate command computes for the same bytes.
 *
 * The storage cases mount a small tmpfs and a read-only bind mount (CI runs as root). Where the OS
 * refuses to mount, a case is ignored with a notice saying why, never skipped silently.
 */

import assert from "node:assert/strict";
import { formatResultCsv } from "./aggregate/_reference.ts";
import { aggregateInputFile } from "./aggregate/sales_input.ts";
import { loadConfig } from "./config.ts";
import { AppError, Status } from "./errors.ts";
import { GrpcSalesClient } from "./grpc/sales_client.ts";
import { type RunningServer, startServer } from "./main.ts";
import { loopbackEnv } from "./_test_loopback_env.ts";
import { chunksOf } from "./_test_bytes.ts";
import { eventually } from "./_test_eventually.ts";
import { seededRandom } from "./_test_mulberry32.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAIN = new URL("./main.ts", import.meta.url).pathname;
const ABANDONED_UPLOAD_CLIENT =
  new URL("./_test_abandoned_upload_client.ts", import.meta.url).pathname;
const SERVER_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
];

// ---------------------------------------------------------------------------------------------
// Inputs and the reference result

/**
 * A sales CSV of `rows` rows over `departments` departments (some quoted, one in three names
 * padded to `nameLength`), plus two bad rows. `seed` varies the figures so results differ.
 */
function salesCsv(
  rows: number,
  options: { departments?: number; nameLength?: number; seed?: number } = {},
): Uint8Array<ArrayBuffer> {
  const { departments = 40, nameLength = 0, seed = 1 } = options;
  const lines = ["Department Name,Date,Number of Sales"];
  for (let i = 0; i < rows; i++) {
    const d = i % departments;
    const base = d % 3 === 0 ? `Dept ${d} ${"x".repeat(nameLength)}` : `Dept ${d}`;
    const name = d % 5 === 0 ? `"${base}, quoted"` : base;
    const month = String(1 + (i % 12)).padStart(2, "0");
    lines.push(`${name},2024-${month}-15,${(i * 7919 + seed * 104729) % 5000}`);
  }
  lines.push("Toys,2023-02-29,1", "only,two");
  return encoder.encode(lines.join("\n") + "\n");
}

/** What the aggregate command writes for `bytes` (`aggregateInputFile`, then `formatResultCsv`). */
async function aggregateCommandResult(bytes: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "faults_reference_", suffix: ".csv" });
  try {
    await Deno.writeFile(path, bytes);
    return formatResultCsv((await aggregateInputFile(path)).totals);
  } finally {
    await Deno.remove(path);
  }
}

async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Checks that a rejection is an AppError with `code` (any of `code`) and a matching message. */
function isAppError(code: Status | Status[], pattern?: RegExp) {
  const codes = Array.isArray(code) ? code : [code];
  return (error: unknown) => {
    assert.ok(error instanceof AppError, `not an AppError: ${error}`);
    assert.ok(codes.includes(error.code), `code ${error.code} (${error.message})`);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

async function namesIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** A stored result read as a whole: it must be complete, header first and newline-terminated. */
function assertCompleteResult(csv: string, where: string): void {
  assert.ok(csv.startsWith("Department Name,Total Number of Sales\n"), `${where}: no header`);
  assert.ok(csv.endsWith("\n"), `${where}: cut short`);
  for (const line of csv.slice(0, -1).split("\n").slice(1)) {
    assert.match(line, /^.+,\d+$/, `${where}: bad line ${JSON.stringify(line)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

interface InProcessServer {
  server: RunningServer;
  client: GrpcSalesClient;
  resultsDir: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/** `startServer` on loopback ports 0 over `storageDir`. */
async function startInProcess(
  storageDir: string,
  env: Record<string, string> = {},
): Promise<InProcessServer> {
  const config = loadConfig({
    ...loopbackEnv(storageDir),
    ...env,
  });
  const server = await startServer(config, { log: () => {} });
  const client = new GrpcSalesClient(`127.0.0.1:${server.grpc.port}`);
  return {
    server,
    client,
    resultsDir: `${storageDir}/results`,
    async [Symbol.asyncDispose]() {
      client.close();
      await server.shutdown(2_000);
    },
  };
}

/** `server/main.ts` as users run it, in a child process, with its stdout watched. */
class ServerProcess {
  readonly child: Deno.ChildProcess;
  readonly exited: Promise<Deno.CommandStatus>;
  #output = "";
  readonly #stderr: Promise<string>;
  readonly #pumped: Promise<void>;

  constructor(storageDir: string) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...SERVER_PERMISSIONS, MAIN],
      env: {
        ...loopbackEnv(storageDir),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.exited = child.status;
    this.#stderr = new Response(child.stderr).text();
    this.#pumped = (async () => {
      for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
        this.#output += text;
      }
    })();
  }

  /** Waits until stdout has a line matching `pattern`; returns the match. */
  async waitFor(pattern: RegExp): Promise<RegExpExecArray> {
    let exited = false;
    this.exited.then(() => exited = true);
    return await eventually(
      async () => {
        const match = pattern.exec(this.#output);
        if (match || !exited) return match ?? undefined;
        await this.#pumped;
        const late = pattern.exec(this.#output);
        if (late) return late;
        assert.fail(`The server exited without printing ${pattern}:\n${await this.report()}`);
      },
      `the server to print ${pattern}`,
      30_000,
    );
  }

  /** The gRPC address and the result server's port, once it listens. */
  async listening(): Promise<{ address: string; httpPort: number }> {
    const grpc = await this.waitFor(/^\[gRPC\] Listening on 127\.0\.0\.1:(\d+)$/m);
    const http = await this.waitFor(/^\[HTTP\] Listening on 127\.0\.0\.1:(\d+) /m);
    return { address: `127.0.0.1:${grpc[1]}`, httpPort: Number(http[1]) };
  }

  async report(): Promise<string> {
    return `stdout:\n${this.#output}\nstderr:\n${await this.#stderr}`;
  }

  /** Kills the process if it still runs and waits for its pipes to close. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.exited;
    await this.#pumped;
    await this.#stderr;
  }
}

// ---------------------------------------------------------------------------------------------
// Client killed

Deno.test({
  name:
    "startServer drops the uploads of a killed client process, keeps serving and expires its chunked upload",
  async fn() {
    const storageDir = await Deno.makeTempDir({ prefix: "faults_killed_client_" });
    const csvPath = `${storageDir}/input.csv`;
    try {
      await using s = await startInProcess(storageDir, { UPLOAD_IDLE_TIMEOUT_SEC: "3" });
      const bytes = salesCsv(40_000);
      await Deno.writeFile(csvPath, bytes);

      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", ABANDONED_UPLOAD_CLIENT, `127.0.0.1:${s.server.grpc.port}`, csvPath],
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      let output = "";
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      while (!/^stream sent \d+$/m.test(output) || !/^chunked \S+ \d+$/m.test(output)) {
        const { value, done } = await reader.read();
        if (done) assert.fail(`The client exited early:\n${output}`);
        output += value;
      }
      const [, uploadId, committed] = /^chunked (\S+) (\d+)$/m.exec(output)!;
      assert.ok(Number(committed) > bytes.length / 2, "the chunked upload is past its middle");
      await eventually(() => s.server.service.uploadsInProgress === 2, "both uploads to start");

      child.kill("SIGKILL");
      assert.equal((await child.status).signal, "SIGKILL");
      await reader.cancel().catch(() => {});

      // The stream's state goes at once; the chunked upload waits for its client until it expires.
      await eventually(
        () => s.server.service.uploadsInProgress === 1,
        "the server to drop the killed stream",
      );
      assert.deepEqual(await namesIn(s.resultsDir), [], "no result and no temp file");

      // The server goes on serving, with the right totals.
      assert.equal(await s.client.checkHealth(), "SERVING");
      const response = await s.client.uploadStream(chunksOf(bytes, 64 * 1024), "next.csv");
      assert.equal(response.rows, 40_002);
      assert.equal(
        decoder.decode(await s.client.downloadResult(response.resultId)),
        await aggregateCommandResult(bytes),
      );

      await eventually(
        () => s.server.service.uploadsInProgress === 0,
        "the abandoned chunked upload to expire",
        10_000,
      );
      await assert.rejects(
        s.client.appendUpload(uploadId, Number(committed), bytes.subarray(Number(committed))),
        isAppError(Status.NOT_FOUND, /expired after 3 s without activity/),
      );
      assert.deepEqual(await namesIn(s.resultsDir), [
        `${response.resultId}.csv`,
        `${response.resultId}.json`,
      ]);
    } finally {
      await Deno.remove(storageDir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Server stopped

Deno.test({
  name:
    "main.ts on SIGTERM finishes uploads in flight, fails a stuck one cleanly, exits 0 and serves every result after a restart",
  async fn() {
    const storageDir = await Deno.makeTempDir({ prefix: "faults_sigterm_" });
    const resultsDir = `${storageDir}/results`;
    /** Result id -> the aggregate command's CSV for that upload. */
    const stored = new Map<string, string>();
    let chunkedUploadId = "";
    const clients: GrpcSalesClient[] = [];
    try {
      {
        await using server = new ServerProcess(storageDir);
        const { address } = await server.listening();
        const client = new GrpcSalesClient(address);
        clients.push(client);

        // Written before the signal.
        const before = salesCsv(5_000, { seed: 10 });
        const first = await client.uploadStream(chunksOf(before, 64 * 1024), "before.csv");
        stored.set(first.resultId, await aggregateCommandResult(before));

        // Three uploads held mid-stream until the server has the signal, and one held forever.
        let release!: () => void;
        const gate = new Promise<void>((resolve) => release = resolve);
        let unstick!: () => void;
        const stuckGate = new Promise<void>((resolve) => unstick = resolve);
        let atGate = 0;
        const halfThenWait = async function* (bytes: Uint8Array, wait: Promise<void>) {
          const chunks = chunksOf(bytes, 32 * 1024);
          const half = Math.floor(chunks.length / 2);
          yield* chunks.slice(0, half);
          atGate++;
          await wait;
          yield* chunks.slice(half);
        };
        const inFlight = [11, 12, 13].map((seed) => {
          const bytes = salesCsv(20_000, { seed });
          return {
            bytes,
            upload: client.uploadStream(halfThenWait(bytes, gate), `inflight-${seed}.csv`),
          };
        });
        const stuck = client.uploadStream(
          halfThenWait(salesCsv(20_000, { seed: 14 }), stuckGate),
          "stuck.csv",
        ).then(
          (response) => assert.fail(`the stuck upload got a result: ${JSON.stringify(response)}`),
          (error: unknown) => error,
        );
        // A chunked upload half done.
        const chunkedBytes = salesCsv(20_000, { seed: 15 });
        const chunkedChunks = chunksOf(chunkedBytes, 64 * 1024);
        chunkedUploadId = (await client.startUpload("chunked.csv", chunkedBytes.length)).uploadId;
        let offset = 0;
        for (const chunk of chunkedChunks.slice(0, Math.floor(chunkedChunks.length / 2))) {
          offset = (await client.appendUpload(chunkedUploadId, offset, chunk)).committedOffset;
        }
        await eventually(() => atGate === 4, "every upload to reach its gate");
        // Frames on one connection are handled in order: once this answers, the server has the
        // four streams and their first halves.
        assert.equal(await client.checkHealth(), "SERVING");

        server.child.kill("SIGTERM");
        await server.waitFor(/^\[main\] SIGTERM received/m);

        // New calls are refused with a clear status; the chunked upload cannot go on.
        await assert.rejects(
          client.appendUpload(
            chunkedUploadId,
            offset,
            chunkedChunks[Math.floor(chunkedChunks.length / 2)],
          ),
          isAppError(Status.UNAVAILABLE),
        );

        // Calls in flight finish, each with its whole result.
        release();
        for (const { bytes, upload } of inFlight) {
          const response = await upload;
          assert.equal(response.rows, 20_002);
          stored.set(response.resultId, await aggregateCommandResult(bytes));
        }

        // The stuck call is cut at the end of the grace period, and the process exits 0.
        const status = await server.exited;
        assert.equal(status.code, 0, await server.report());
        unstick();
        // Told why, not a bare CANCELLED as if it had given up itself.
        isAppError(Status.UNAVAILABLE, /^The server is shutting down/)(await stuck);
      }

      // On disk: the four results, each whole with its metadata; no temp file, no result of the
      // cut upload.
      assert.deepEqual(
        await namesIn(resultsDir),
        [...stored.keys()].flatMap((resultId) => [`${resultId}.csv`, `${resultId}.json`]).sort(),
      );
      for (const [resultId, expected] of stored) {
        const csv = await Deno.readTextFile(`${resultsDir}/${resultId}.csv`);
        assertCompleteResult(csv, resultId);
        assert.equal(csv, expected);
      }

      // A restart on the same storage serves every result written before.
      {
        await using server = new ServerProcess(storageDir);
        const { address, httpPort } = await server.listening();
        const client = new GrpcSalesClient(address);
        clients.push(client);
        for (const [resultId, expected] of stored) {
          assert.equal(decoder.decode(await client.downloadResult(resultId)), expected);
          const response = await fetch(`http://127.0.0.1:${httpPort}/results/${resultId}.csv`);
          assert.equal(response.status, 200);
          assert.equal(await response.text(), expected);
        }
        // The half-done chunked upload lived in memory only: a clear NOT_FOUND, not a partial result.
        await assert.rejects(
          client.finishUpload(chunkedUploadId),
          isAppError(Status.NOT_FOUND),
        );
        server.child.kill("SIGTERM");
        assert.equal((await server.exited).code, 0, await server.report());
      }
    } finally {
      for (const client of clients) client.close();
      await Deno.remove(storageDir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Storage full or not writable

/** Runs `mount` or `umount`; returns the error output, or undefined on success. */
async function run(command: string, args: string[]): Promise<string | undefined> {
  try {
    const { success, stderr } = await new Deno.Command(command, { args, stdout: "null" }).output();
    return success ? undefined : decoder.decode(stderr).trim() || `${command} failed`;
  } catch (error) {
    return `${command}: ${(error as Error).message}`;
  }
}

/** Why this machine cannot mount a tmpfs here, or undefined when it can. */
async function mountRefusal(): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "faults_mount_probe_" });
  try {
    const refused = await run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]);
    if (refused === undefined) await run("umount", [dir]);
    return refused;
  } finally {
    await Deno.remove(dir);
  }
}

const MOUNT_REFUSED = await mountRefusal();
const IS_ROOT = Deno.uid() === 0;
if (MOUNT_REFUSED !== undefined) {
  console.warn(
    `faults_test.ts: this machine refuses to mount (${MOUNT_REFUSED}): the full-storage test is ` +
      `ignored${IS_ROOT ? " and so is the unwritable-storage test (root writes past chmod)" : ""}`,
  );
}

Deno.test({
  name:
    "startServer answers RESOURCE_EXHAUSTED when the storage is full, leaves nothing partial and recovers",
  ignore: MOUNT_REFUSED !== undefined,
  async fn() {
    const storageDir = await Deno.makeTempDir({ prefix: "faults_full_" });
    const mounted = await run("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", storageDir]);
    assert.equal(mounted, undefined, "mounting worked when probed");
    try {
      await using s = await startInProcess(storageDir);
      // Leave about 32 KiB free.
      await Deno.writeFile(`${storageDir}/filler`, new Uint8Array(224 * 1024));
      // ~3000 departments with long names: a result of about 150 KB.
      const big = salesCsv(9_000, { departments: 3_000, nameLength: 80 });
      const small = salesCsv(2_000, { seed: 2 });

      await assert.rejects(
        s.client.uploadStream(chunksOf(big, 64 * 1024), "big.csv"),
        isAppError(Status.RESOURCE_EXHAUSTED, /^Cannot store the result: the storage is full$/),
      );
      assert.deepEqual(await namesIn(s.resultsDir), [], "no partial result or temp file");
      assert.equal(s.server.service.uploadsInProgress, 0);

      // Results that fit are still stored.
      const fits = await s.client.upload(small, "small.csv");
      assert.equal(
        decoder.decode(await s.client.downloadResult(fits.resultId)),
        await aggregateCommandResult(small),
      );

      // A chunked upload keeps its complete input, so FinishUpload can be retried once there is room.
      const { uploadId } = await s.client.startUpload("big.csv", big.length);
      let offset = 0;
      for (const chunk of chunksOf(big, 64 * 1024)) {
        offset = (await s.client.appendUpload(uploadId, offset, chunk)).committedOffset;
      }
      await assert.rejects(
        s.client.finishUpload(uploadId),
        isAppError(Status.RESOURCE_EXHAUSTED, /storage is full/),
      );
      assert.deepEqual(await namesIn(s.resultsDir), [
        `${fits.resultId}.csv`,
        `${fits.resultId}.json`,
      ]);
      await Deno.remove(`${storageDir}/filler`);
      const finished = await s.client.finishUpload(uploadId);
      assert.equal(
        decoder.decode(await s.client.downloadResult(finished.resultId)),
        await aggregateCommandResult(big),
      );
      assert.deepEqual(
        await namesIn(s.resultsDir),
        [fits.resultId, finished.resultId].flatMap((id) => [`${id}.csv`, `${id}.json`]).sort(),
      );
    } finally {
      await run("umount", [storageDir]);
      await Deno.remove(storageDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "startServer answers FAILED_PRECONDITION when the results folder is not writable, leaves nothing and recovers",
  ignore: MOUNT_REFUSED !== undefined && IS_ROOT,
  async fn() {
    const storageDir = await Deno.makeTempDir({ prefix: "faults_readonly_" });
    const resultsDir = `${storageDir}/results`;
    // Root writes through file modes, so root makes the folder a read-only bind mount instead.
    const makeReadOnly = async () => {
      if (MOUNT_REFUSED !== undefined) return await Deno.chmod(resultsDir, 0o555);
      assert.equal(await run("mount", ["--bind", resultsDir, resultsDir]), undefined);
      assert.equal(await run("mount", ["-o", "remount,bind,ro", resultsDir]), undefined);
    };
    const makeWritable = async () => {
      if (MOUNT_REFUSED !== undefined) return await Deno.chmod(resultsDir, 0o755);
      assert.equal(await run("umount", [resultsDir]), undefined);
    };
    let readOnly = false;
    try {
      await using s = await startInProcess(storageDir);
      const bytes = salesCsv(3_000);
      const expected = await aggregateCommandResult(bytes);
      // Two chunked uploads with their whole input in, plain and gzip-compressed.
      const gzipped = await gzip(bytes);
      const chunkedIds: string[] = [];
      for (const input of [bytes, gzipped]) {
        const { uploadId } = await s.client.startUpload("chunked.csv", input.length);
        await s.client.appendUpload(uploadId, 0, input);
        chunkedIds.push(uploadId);
      }
      await makeReadOnly();
      readOnly = true;

      const notWritable = /^Cannot store the result: the results folder is not writable$/;
      await assert.rejects(
        s.client.uploadStream(chunksOf(bytes, 64 * 1024), "stream.csv"),
        isAppError(Status.FAILED_PRECONDITION, notWritable),
      );
      await assert.rejects(
        s.client.upload(bytes, "unary.csv"),
        isAppError(Status.FAILED_PRECONDITION, notWritable),
      );
      for (const uploadId of chunkedIds) {
        await assert.rejects(
          s.client.finishUpload(uploadId),
          isAppError(Status.FAILED_PRECONDITION, notWritable),
        );
      }
      assert.deepEqual(await namesIn(resultsDir), []);
      assert.equal(s.server.service.uploadsInProgress, 2, "the chunked uploads, kept to retry");

      await makeWritable();
      readOnly = false;
      const retried = await Promise.all(chunkedIds.map((id) => s.client.finishUpload(id)));
      const streamed = await s.client.uploadStream(chunksOf(bytes, 64 * 1024), "stream.csv");
      for (const { resultId } of [...retried, streamed]) {
        assert.equal(decoder.decode(await s.client.downloadResult(resultId)), expected);
      }
      assert.equal(s.server.service.uploadsInProgress, 0);
    } finally {
      if (readOnly) await makeWritable();
      await Deno.remove(storageDir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Resumable path: replayed, reordered and dropped chunks

Deno.test({
  name:
    "startServer chunked upload survives replayed, reordered and dropped chunks with the aggregate command's totals",
  async fn(t) {
    const storageDir = await Deno.makeTempDir({ prefix: "faults_chunks_" });
    try {
      await using s = await startInProcess(storageDir);
      const bytes = salesCsv(2_000);
      const expected = await aggregateCommandResult(bytes);
      // Odd-sized chunks, so boundaries fall inside records.
      const chunks = chunksOf(bytes, 3_001);
      const offsets = chunks.map((_, i) => i * 3_001);
      assert.ok(chunks.length >= 12);
      const { uploadId } = await s.client.startUpload("faults.csv", bytes.length);
      const append = (i: number) => s.client.appendUpload(uploadId, offsets[i], chunks[i]);
      const refusedAt = (committed: number) =>
        isAppError(
          Status.FAILED_PRECONDITION,
          new RegExp(`offset \\d+ does not match committed offset ${committed}$`),
        );

      for (let i = 0; i < 4; i++) await append(i);
      const progress = await append(4);

      await t.step("a replayed chunk is acknowledged, not counted twice", async () => {
        for (const i of [4, 3, 0]) {
          assert.deepEqual(await append(i), progress);
        }
      });

      await t.step(
        "reordered chunks: the early one is refused, the right order goes on",
        async () => {
          await assert.rejects(append(6), refusedAt(offsets[5]));
          await append(5);
          await append(6);
        },
      );

      await t.step(
        "a dropped chunk: the next is refused until the dropped one is resent",
        async () => {
          // Chunk 7 is lost on the way.
          await assert.rejects(append(8), refusedAt(offsets[7]));
          await assert.rejects(append(9), refusedAt(offsets[7]));
          await append(7);
          await append(8);
        },
      );

      for (let i = 9; i < chunks.length; i++) await append(i);
      const response = await s.client.finishUpload(uploadId);
      assert.equal(response.rows, 2_002);
      assert.equal(response.badRows, 2);
      assert.equal(decoder.decode(await s.client.downloadResult(response.resultId)), expected);
    } finally {
      await Deno.remove(storageDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "startServer chunked upload through a seeded faulty network ends with the aggregate command's totals",
  async fn(t) {
    const storageDir = await Deno.makeTempDir({ prefix: "faults_chaos_" });
    try {
      await using s = await startInProcess(storageDir);
      const bytes = salesCsv(6_000, { departments: 97 });
      const expected = await aggregateCommandResult(bytes);
      for (const seed of [1, 2, 3]) {
        await t.step(`seed ${seed}`, async () => {
          const random = seededRandom(seed);
          // Random chunk sizes, fixed per offset: a resend repeats the same bytes.
          const cuts = [0];
          while (cuts.at(-1)! < bytes.length) {
            cuts.push(Math.min(bytes.length, cuts.at(-1)! + 1 + Math.floor(random() * 8_000)));
          }
          const { uploadId } = await s.client.startUpload(`chaos-${seed}.csv`, bytes.length);
          const send = (i: number) =>
            s.client.appendUpload(uploadId, cuts[i], bytes.subarray(cuts[i], cuts[i + 1]));
          /** Index of the next chunk to send; the server's committed offset is cuts[next]. */
          let next = 0;
          let rows = 0;
          const counts = { sent: 0, replayed: 0, refused: 0 };
          while (next < cuts.length - 1) {
            const roll = random();
            if (roll < 0.2 && next > 0) {
              // A replay of one of the last few acknowledged chunks (a lost reply).
              const i = Math.max(0, next - 1 - Math.floor(random() * 4));
              const again = await send(i);
              assert.equal(again.committedOffset, cuts[next]);
              assert.equal(again.rows, rows, "a replay is not counted again");
              counts.replayed++;
            } else if (roll < 0.4 && next + 1 < cuts.length - 1) {
              // Reordered or dropped: a later chunk arrives first and is refused.
              const skip = 1 + Math.floor(random() * Math.min(3, cuts.length - 2 - next));
              await assert.rejects(send(next + skip), (error: unknown) => {
                assert.ok(error instanceof AppError && error.code === Status.FAILED_PRECONDITION);
                const committed = Number(/committed offset (\d+)$/.exec(error.message)?.[1]);
                assert.equal(committed, cuts[next], "the refusal names the committed offset");
                return true;
              });
              counts.refused++;
            } else {
              const progress = await send(next);
              next++;
              assert.equal(progress.committedOffset, cuts[next]);
              assert.ok(progress.rows >= rows);
              rows = progress.rows;
              counts.sent++;
            }
          }
          assert.ok(counts.replayed > 0 && counts.refused > 0, JSON.stringify(counts));
          const response = await s.client.finishUpload(uploadId);
          assert.equal(response.rows, 6_002);
          assert.equal(decoder.decode(await s.client.downloadResult(response.resultId)), expected);
        });
      }
    } finally {
      await Deno.remove(storageDir, { recursive: true });
    }
  },
});
