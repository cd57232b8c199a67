/**
 * Integration tests: a whole server (`startServer`) on port 0 with a real grpc-js client and real
 * HTTP requests.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { defaultReplicaId, loadConfig } from "../config.ts";
import { AppError, Status } from "../errors.ts";
import { type RunningServer, startServer } from "../main.ts";
import * as http2 from "node:http2";
import { GrpcSalesClient } from "./sales_client.ts";
import { startGrpcServer, tuneHttp2Sessions, UPLOAD_HTTP2_SETTINGS } from "./grpc_server.ts";
import { bindOnFreePort, framed, rawCall, uploadRequest } from "./_test_raw_grpc.ts";
import { chunksOf } from "../_test_bytes.ts";
import { consistently, eventually } from "../_test_eventually.ts";
import { loopbackEnv } from "../_test_loopback_env.ts";
import { SIGNED_URL_TTL_SEC, startSignedSalesService } from "../_test_signed_sales_service.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const SAMPLE_PATH = new URL("../../testdata/sample.csv", import.meta.url);

/** A CSV of `rows` rows over 40 departments, some quoted, plus 3 bad rows. */
function generatedCsv(rows: number): string {
  const lines = ["Department Name,Date,Number of Sales"];
  for (let i = 0; i < rows; i++) {
    const department = i % 5 === 0 ? `"Dept, ${i % 40}"` : `Dept ${i % 40}`;
    lines.push(
      `${department},2024-${String(1 + (i % 12)).padStart(2, "0")}-15,${(i * 7919) % 5000}`,
    );
  }
  lines.push("Toys,2023-02-29,1", "Toys,2024-01-01,-5", "only,two");
  return lines.join("\n") + "\n";
}

/** What `deno task aggregate` writes for `csv`: the reference every upload path must match. */
async function aggregateCommandResult(csv: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "aggregate_reference_" });
  try {
    await Deno.writeTextFile(`${dir}/in.csv`, csv);
    const command = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        new URL("../cli/aggregate.ts", import.meta.url).pathname,
        `${dir}/in.csv`,
        "--out",
        `${dir}/out.csv`,
      ],
      stdout: "piped",
      stderr: "piped",
    });
    const { code, stderr } = await command.output();
    assert.equal(code, 0, decoder.decode(stderr));
    return await Deno.readTextFile(`${dir}/out.csv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function isAppError(code: Status, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof AppError, `not an AppError: ${error}`);
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

interface TestServer {
  server: RunningServer;
  client: GrpcSalesClient;
  storageDir: string;
  resultsUrl(path: string): string;
  resultFiles(): Promise<string[]>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function startTestServer(
  env: Record<string, string> = {},
  storageDir?: string,
): Promise<TestServer> {
  const dir = storageDir ?? await Deno.makeTempDir({ prefix: "grpc_server_test_" });
  const config = loadConfig({
    ...loopbackEnv(dir),
    ...env,
  });
  const server = await startServer(config, { log: () => {} });
  const client = new GrpcSalesClient(`127.0.0.1:${server.grpc.port}`);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    client.close();
    await server.shutdown(2_000);
  };
  return {
    server,
    client,
    storageDir: dir,
    resultsUrl: (path) => `http://127.0.0.1:${server.http.port}${path}`,
    async resultFiles() {
      const names: string[] = [];
      for await (const entry of Deno.readDir(`${dir}/results`)) names.push(entry.name);
      return names.sort();
    },
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      if (storageDir === undefined) await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test({
  name: "startServer serves every RPC with results equal to the aggregate command's",
  async fn(t) {
    await using s = await startTestServer();
    const csv = generatedCsv(3000);
    const bytes = encoder.encode(csv);
    const expected = await aggregateCommandResult(csv);
    const results: Record<string, string> = {};

    await t.step("Health/Check", async () => {
      assert.equal(await s.client.checkHealth(), "SERVING");
      assert.equal(await s.client.checkHealth("sales.v1.SalesService"), "SERVING");
    });

    await t.step("UploadCSV", async () => {
      const response = await s.client.upload(bytes, "unary.csv");
      assert.equal(response.rows, 3003);
      assert.equal(response.badRows, 3);
      assert.equal(response.departments, 40);
      assert.equal(response.badRowSamples.length, 3);
      assert.deepEqual(response.badRowSamples.map((sample) => sample.line), [3002, 3003, 3004]);
      assert.equal(response.badRowSamples[2].raw, "only,two");
      assert.equal(
        response.downloadUrl,
        `http://localhost:${s.server.http.port}/results/${response.resultId}.csv`,
      );
      results.unary = response.resultId;
    });

    await t.step("UploadCSVStream", async () => {
      const response = await s.client.uploadStream(chunksOf(bytes, 1000), "stream.csv");
      assert.equal(response.rows, 3003);
      assert.ok(response.elapsedSec > 0);
      results.stream = response.resultId;
    });

    await t.step("StartUpload, AppendUpload, FinishUpload", async () => {
      const { uploadId, chunkSize } = await s.client.startUpload("chunked.csv", bytes.length);
      assert.equal(chunkSize, 4 * 1024 * 1024);
      let offset = 0;
      for (const chunk of chunksOf(bytes, 7000)) {
        const progress = await s.client.appendUpload(uploadId, offset, chunk);
        offset += chunk.length;
        assert.equal(progress.committedOffset, offset);
      }
      const response = await s.client.finishUpload(uploadId);
      assert.equal(response.rows, 3003);
      results.chunked = response.resultId;
    });

    await t.step("DownloadResult and the result file server return the same bytes", async () => {
      for (const resultId of Object.values(results)) {
        assert.equal(decoder.decode(await s.client.downloadResult(resultId)), expected);
        const response = await fetch(s.resultsUrl(`/results/${resultId}.csv`));
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-type"), "text/csv; charset=utf-8");
        assert.equal(
          response.headers.get("content-length"),
          String(encoder.encode(expected).length),
        );
        assert.equal(await response.text(), expected);
      }
    });

    await t.step("CancelUpload", async () => {
      const { uploadId } = await s.client.startUpload("cancelled.csv", 0);
      await s.client.appendUpload(uploadId, 0, bytes.subarray(0, 100));
      await s.client.cancelUpload(uploadId);
      await assert.rejects(
        s.client.appendUpload(uploadId, 100, bytes.subarray(100, 200)),
        isAppError(Status.NOT_FOUND, /cancelled/),
      );
    });

    assert.equal((await s.resultFiles()).length, 6, "3 results, each with its metadata");
    assert.equal(s.server.service.uploadsInProgress, 0);
  },
});

Deno.test({
  name: "startServer sends uint64 fields as decimal strings on the wire",
  async fn() {
    await using s = await startTestServer();
    const response = await new Promise<Record<string, unknown>>((resolve, reject) => {
      s.client.raw.UploadCSV(
        { data: encoder.encode("Toys,2024-01-01,3\nbad\n"), filename: "x.csv" },
        (error: Error | null, value: Record<string, unknown>) =>
          error ? reject(error) : resolve(value),
      );
    });
    assert.equal(response.rows, "2");
    assert.equal(response.badRows, "1");
    assert.equal(response.departments, "1");
    assert.deepEqual((response.badRowSamples as { line: string }[]).map((b) => b.line), ["2"]);
  },
});

Deno.test({
  name:
    "startServer acknowledges retried chunks and rejects wrong offsets naming the committed one",
  async fn() {
    await using s = await startTestServer();
    const bytes = encoder.encode(generatedCsv(500));
    const chunks = chunksOf(bytes, 2048);
    const { uploadId } = await s.client.startUpload("retry.csv", bytes.length);
    let offset = 0;
    for (const chunk of chunks) {
      await s.client.appendUpload(uploadId, offset, chunk);
      // The reply was "lost": the client sends the same chunk again.
      const retry = await s.client.appendUpload(uploadId, offset, chunk);
      offset += chunk.length;
      assert.equal(retry.committedOffset, offset);
    }
    await assert.rejects(
      s.client.appendUpload(uploadId, offset + 1, encoder.encode("x")),
      isAppError(Status.FAILED_PRECONDITION, new RegExp(`committed offset ${offset}\\b`)),
    );
    await assert.rejects(
      s.client.appendUpload(uploadId, 0, encoder.encode("Different bytes at offset 0")),
      isAppError(Status.FAILED_PRECONDITION, new RegExp(`committed offset ${offset}\\b`)),
    );
    await assert.rejects(
      s.client.appendUpload(uploadId, Number.MAX_SAFE_INTEGER + 2, encoder.encode("x")),
      isAppError(Status.INVALID_ARGUMENT),
    );
    const first = await s.client.finishUpload(uploadId);
    const again = await s.client.finishUpload(uploadId);
    assert.deepEqual(again, first);
    assert.equal(first.rows, 503);
    assert.equal(
      decoder.decode(await s.client.downloadResult(first.resultId)),
      await aggregateCommandResult(generatedCsv(500)),
    );
  },
});

Deno.test({
  name: "startServer expires idle chunked uploads",
  async fn() {
    await using s = await startTestServer({ UPLOAD_IDLE_TIMEOUT_SEC: "0.2" });
    const { uploadId } = await s.client.startUpload("idle.csv", 0);
    await s.client.appendUpload(uploadId, 0, encoder.encode("Toys,2024-01-01,1\n"));
    assert.equal(s.server.service.uploadsInProgress, 1);
    await eventually(() => s.server.service.uploadsInProgress === 0, "the upload to expire");
    await assert.rejects(
      s.client.appendUpload(uploadId, 18, encoder.encode("Toys,2024-01-01,1\n")),
      isAppError(Status.NOT_FOUND, /expired after 0\.2 s without activity/),
    );
  },
});

Deno.test({
  name: "startServer leaves no result, temp file or upload state when a client leaves mid-stream",
  async fn() {
    await using s = await startTestServer();
    const bytes = encoder.encode(generatedCsv(20_000));
    let finished: (error: grpc.ServiceError | null) => void;
    const outcome = new Promise<grpc.ServiceError | null>((resolve) => finished = resolve);
    const call = s.client.raw.UploadCSVStream((error: grpc.ServiceError | null) => finished(error));
    const chunks = chunksOf(bytes, 16 * 1024);
    for (const chunk of chunks.slice(0, chunks.length / 2)) {
      call.write({ data: chunk, filename: "gone.csv" });
    }
    await eventually(() => s.server.service.uploadsInProgress === 1, "the upload to start");
    call.cancel();
    assert.equal((await outcome)?.code, grpc.status.CANCELLED);
    await eventually(
      () => s.server.service.uploadsInProgress === 0,
      "the server to drop the upload",
    );
    assert.deepEqual(await s.resultFiles(), []);
    // The server goes on serving.
    const response = await s.client.uploadStream(chunksOf(bytes, 65536), "next.csv");
    assert.equal(response.rows, 20_003);
    assert.equal((await s.resultFiles()).length, 2, "the result and its metadata");
  },
});

Deno.test({
  name: "startServer answers RESOURCE_EXHAUSTED for a unary message above MAX_MESSAGE_BYTES",
  async fn() {
    await using s = await startTestServer({ MAX_MESSAGE_BYTES: String(64 * 1024) });
    const bytes = encoder.encode(generatedCsv(5000));
    assert.ok(bytes.length > 64 * 1024);
    await assert.rejects(s.client.upload(bytes, "big.csv"), isAppError(Status.RESOURCE_EXHAUSTED));
    // The same file streamed in small messages goes through; the chunked path suggests a fitting size.
    const response = await s.client.uploadStream(chunksOf(bytes, 32 * 1024), "big.csv");
    assert.equal(response.rows, 5003);
    const { chunkSize } = await s.client.startUpload("c.csv", 0);
    assert.equal(chunkSize, 63 * 1024);
    assert.equal((await s.resultFiles()).length, 2, "the result and its metadata");
  },
});

Deno.test({
  name: "startServer rejects malformed and unknown result ids over gRPC and HTTP",
  async fn(t) {
    await using s = await startTestServer();
    await Deno.writeTextFile(`${s.storageDir}/secret.csv`, "top secret");
    await t.step("gRPC", async () => {
      await assert.rejects(s.client.downloadResult("0".repeat(32)), isAppError(Status.NOT_FOUND));
      for (
        const id of [
          "",
          "nope",
          "../secret",
          "../../../../etc/passwd",
          "0".repeat(31) + "/",
          "A".repeat(32),
        ]
      ) {
        await assert.rejects(s.client.downloadResult(id), isAppError(Status.INVALID_ARGUMENT));
      }
    });
    await t.step("HTTP", async () => {
      const cases: [string, number][] = [
        [`/results/${"0".repeat(32)}.csv`, 404],
        ["/results/nope.csv", 400],
        ["/results/%2e%2e%2fsecret.csv", 400],
        ["/results/..%2Fsecret.csv", 400],
        ["/results/", 404],
        ["/secret.csv", 404],
      ];
      for (const [path, status] of cases) {
        const response = await fetch(s.resultsUrl(path));
        assert.equal(response.status, status, path);
        assert.doesNotMatch(await response.text(), /top secret/);
      }
      const post = await fetch(s.resultsUrl(`/results/${"0".repeat(32)}.csv`), { method: "POST" });
      assert.equal(post.status, 405);
      await post.body?.cancel();
    });
    await t.step("raw HTTP paths that fetch would normalize", async () => {
      for (
        const path of [
          "/results/../secret.csv",
          "/results/..%2f..%2fsecret.csv",
          "/../secret.csv",
          "/results/./../secret.csv",
        ]
      ) {
        const reply = await rawHttpGet(s.server.http.port, path);
        assert.match(reply, /^HTTP\/1\.1 40[04] /, path);
        assert.doesNotMatch(reply, /top secret/);
      }
    });
  },
});

/** Sends a request line exactly as written, without URL normalization. */
async function rawHttpGet(port: number, path: string): Promise<string> {
  const connection = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await connection.write(
      encoder.encode(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
    );
    let reply = "";
    const buffer = new Uint8Array(4096);
    for (;;) {
      const read = await connection.read(buffer);
      if (read === null) break;
      reply += decoder.decode(buffer.subarray(0, read));
    }
    return reply;
  } finally {
    connection.close();
  }
}

Deno.test({
  name: "startServer serves ETag and conditional requests on the result file server",
  async fn() {
    await using s = await startTestServer();
    const { resultId } = await s.client.upload(await Deno.readFile(SAMPLE_PATH), "sample.csv");
    const url = s.resultsUrl(`/results/${resultId}.csv`);
    const first = await fetch(url);
    const body = await first.text();
    const etag = first.headers.get("etag")!;
    assert.match(first.headers.get("content-disposition")!, /^attachment/);
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(encoder.encode(body).length));
    assert.equal(await head.text(), "");
    const again = await fetch(url, { headers: { "If-None-Match": etag } });
    assert.equal(again.status, 304);
    await again.body?.cancel();
  },
});

Deno.test({
  name: "startServer keeps results across a restart and removes leftover temp files",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "grpc_restart_test_" });
    try {
      let resultId: string;
      let expected: string;
      {
        await using s = await startTestServer({}, dir);
        const response = await s.client.upload(await Deno.readFile(SAMPLE_PATH), "sample.csv");
        resultId = response.resultId;
        expected = decoder.decode(await s.client.downloadResult(resultId));
      }
      // What a crash in the middle of a write leaves behind: a temp file named by this replica
      // (both servers here take the default REPLICA_ID, this process's).
      await Deno.writeTextFile(
        `${dir}/results/.tmp-${"f".repeat(32)}-${defaultReplicaId()}`,
        "Department Name,Total",
      );
      {
        await using s = await startTestServer({}, dir);
        assert.equal(decoder.decode(await s.client.downloadResult(resultId)), expected);
        const response = await fetch(s.resultsUrl(`/results/${resultId}.csv`));
        assert.equal(await response.text(), expected);
        assert.deepEqual(await s.resultFiles(), [`${resultId}.csv`, `${resultId}.json`]);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "startServer shutdown lets an upload in flight finish and then refuses new calls",
  async fn() {
    await using s = await startTestServer();
    const bytes = encoder.encode(generatedCsv(20_000));
    const chunks = chunksOf(bytes, 32 * 1024);
    const half = Math.floor(chunks.length / 2);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    async function* slowChunks() {
      yield* chunks.slice(0, half);
      await gate;
      yield* chunks.slice(half);
    }
    const upload = s.client.uploadStream(slowChunks(), "inflight.csv");
    await eventually(() => s.server.service.uploadsInProgress === 1, "the upload to start");
    const shutdown = s.server.shutdown(10_000);
    let shutdownDone = false;
    shutdown.then(() => shutdownDone = true);
    await consistently(() => !shutdownDone, "shutdown to wait for the call in flight", 100);
    assert.equal(shutdownDone, false, "shutdown waits for the call in flight");
    release();
    const response = await upload;
    assert.equal(response.rows, 20_003);
    await shutdown;
    assert.equal((await s.resultFiles()).length, 2, "the result and its metadata");
    const late = new GrpcSalesClient(`127.0.0.1:${s.server.grpc.port}`);
    try {
      await assert.rejects(
        late.downloadResult(response.resultId),
        isAppError(Status.UNAVAILABLE),
      );
    } finally {
      late.close();
    }
  },
});

Deno.test({
  name: "startServer answers malformed gRPC requests with the status the protocol asks for",
  async fn(t) {
    await using s = await startTestServer();
    const session = http2.connect(`http://127.0.0.1:${s.server.grpc.port}`);
    session.on("error", () => {});
    try {
      await t.step("a content type that is not gRPC gets HTTP 415", async () => {
        for (const contentType of ["text/plain", "application/json", "application/grpc-web"]) {
          const call = rawCall(session, "/sales.v1.SalesService/UploadCSV", {
            "content-type": contentType,
          });
          call.stream.end("Toys,2024-01-01,1\n");
          const reply = await call.reply;
          // application/grpc-web starts with application/grpc: grpc-js takes it, so only check the rest.
          if (contentType === "application/grpc-web") continue;
          assert.equal(reply.httpStatus, 415, contentType);
          assert.equal(reply.grpcStatus, undefined);
        }
      });

      await t.step("undecodable protobuf gets INVALID_ARGUMENT", async () => {
        const call = rawCall(session, "/sales.v1.SalesService/UploadCSV");
        call.stream.end(framed(new Uint8Array([0x0a, 0x05, 0x41])));
        const reply = await call.reply;
        assert.equal(reply.httpStatus, 200);
        assert.equal(reply.grpcStatus, Status.INVALID_ARGUMENT);
        assert.match(reply.grpcMessage, /^Cannot decode the request message of \/sales\.v1/);
        // The same bytes, well formed, are served.
        const good = rawCall(session, "/sales.v1.SalesService/UploadCSV");
        good.stream.end(framed(uploadRequest(encoder.encode("Toys,2024-01-01,1\n"))));
        assert.equal((await good.reply).grpcStatus, Status.OK);
      });

      await t.step("an expired grpc-timeout gets DEADLINE_EXCEEDED", async () => {
        // The call never sends its message: only the deadline can end it.
        const call = rawCall(session, "/sales.v1.SalesService/UploadCSV", { "grpc-timeout": "1n" });
        const reply = await call.reply;
        assert.equal(reply.grpcStatus, Status.DEADLINE_EXCEEDED);
        call.stream.close();
      });
    } finally {
      session.destroy();
    }
    assert.equal(s.server.service.uploadsInProgress, 0);
  },
});

Deno.test({
  name: "startGrpcServer GetResult describes a result and renews its signed URL, behind the token",
  async fn() {
    await using signed = await startSignedSalesService("grpc_get_result_test_");
    const { store, downloadUrls, clock } = signed;
    const server = await startGrpcServer(signed.service, { port: 0, apiToken: "t0ken" });
    const address = `127.0.0.1:${server.port}`;
    const client = new GrpcSalesClient(address, { metadata: { authorization: "Bearer t0ken" } });
    const anonymous = new GrpcSalesClient(address);
    try {
      const csv =
        "Department Name,Date,Number of Sales\nToys,2024-01-02,3\nToys,bad,4\nGarden,2024-01-03,5\n";
      const uploaded = await client.uploadStream([encoder.encode(csv)], "ventes été.csv");
      const described = await client.getResult(uploaded.resultId);
      assert.deepEqual(
        { ...described, createdAt: undefined },
        {
          resultId: uploaded.resultId,
          downloadUrl: uploaded.downloadUrl,
          filename: "ventes été.csv",
          downloadFilename: "ventes été.result.csv",
          rows: 3,
          badRows: 1,
          departments: 2,
          badRowSamples: uploaded.badRowSamples,
          createdAt: undefined,
          sizeBytes: (await store.read(uploaded.resultId)).length,
          hasMetadata: true,
          files: [{ name: "ventes été.csv", rows: 3, badRows: 1, departments: 2 }],
          pagePath: described.pagePath,
        },
      );
      assert.equal(
        downloadUrls.verifyPage(
          uploaded.resultId,
          new URL(described.pagePath, "http://x").searchParams,
        ),
        undefined,
      );
      assert.ok(Math.abs(described.createdAt.getTime() - Date.now()) < 60_000);

      // Two minutes later the first link has expired; GetResult signs a new one.
      clock.now += 120_000;
      const params = (url: string) => new URL(url).searchParams;
      assert.match(
        downloadUrls.verify(uploaded.resultId, params(uploaded.downloadUrl))!.message,
        /expired/,
      );
      const renewed = await client.getResult(uploaded.resultId);
      assert.notEqual(renewed.downloadUrl, uploaded.downloadUrl);
      assert.equal(downloadUrls.verify(uploaded.resultId, params(renewed.downloadUrl)), undefined);
      assert.equal(
        Number(params(renewed.downloadUrl).get("exp")),
        clock.now / 1000 + SIGNED_URL_TTL_SEC,
      );

      // A result stored before metadata was kept is still described, with defaults.
      const olderCsv = "Department Name,Total Number of Sales\nToys,7\n";
      const older = await store.save(olderCsv);
      assert.deepEqual(
        { ...(await client.getResult(older)), downloadUrl: "", pagePath: "", createdAt: undefined },
        {
          resultId: older,
          downloadUrl: "",
          filename: "",
          downloadFilename: `${older}.csv`,
          rows: 0,
          badRows: 0,
          departments: 0,
          badRowSamples: [],
          createdAt: undefined,
          sizeBytes: encoder.encode(olderCsv).length,
          hasMetadata: false,
          files: [],
          pagePath: "",
        },
      );

      await assert.rejects(client.getResult("f".repeat(32)), isAppError(Status.NOT_FOUND));
      await assert.rejects(
        client.getResult("../../etc/passwd"),
        isAppError(Status.INVALID_ARGUMENT, /Malformed result id/),
      );
      await assert.rejects(
        anonymous.getResult(uploaded.resultId),
        isAppError(Status.UNAUTHENTICATED),
      );
    } finally {
      client.close();
      anonymous.close();
      await server.shutdown(100);
    }
  },
});

Deno.test({
  name:
    "tuneHttp2Sessions finds grpc-js's http2 servers in its private field and tunes new sessions",
  async fn() {
    // tuneHttp2Sessions reaches into grpc-js's private `http2Servers`; when an upgrade renames or
    // reshapes it, uploads silently slow down. This fails first.
    const server = new grpc.Server();
    const port = await bindOnFreePort(server);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
      assert.ok(http2Servers instanceof Map, "grpc-js no longer keeps a Map in `http2Servers`");
      assert.equal(http2Servers.size, 1);
      for (const http2Server of http2Servers.keys()) {
        assert.equal(typeof http2Server.on, "function", "`http2Servers` keys are not servers");
        assert.equal(http2Server.listening, true, "`http2Servers` keys are not listening servers");
      }
      assert.equal(tuneHttp2Sessions(server), 1);

      // A session opened afterwards gets the tuned settings from the server.
      let deadline: ReturnType<typeof setTimeout> | undefined;
      const settings = await new Promise<http2.Settings>((resolve, reject) => {
        // Node's default maxFrameSize is 16 KiB: only the tuned SETTINGS frame matches.
        session.on("remoteSettings", (remote: http2.Settings) => {
          if (remote.maxFrameSize === UPLOAD_HTTP2_SETTINGS.maxFrameSize) resolve(remote);
        });
        session.once("error", reject);
        deadline = setTimeout(() => reject(new Error("No tuned SETTINGS within 5 s")), 5_000);
      }).finally(() => clearTimeout(deadline));
      assert.equal(settings.maxFrameSize, UPLOAD_HTTP2_SETTINGS.maxFrameSize);
      assert.equal(settings.initialWindowSize, UPLOAD_HTTP2_SETTINGS.initialWindowSize);
    } finally {
      session.destroy();
      server.forceShutdown();
    }
  },
});
