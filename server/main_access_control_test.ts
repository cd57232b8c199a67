/**
 * Integration tests of access control as `startServer` wires it: `SALES_API_TOKEN` over grpc-js and
 * gRPC-Web (health checks open), `SALES_URL_SECRET` on the result server, and the
 * `RESULT_TTL_HOURS` sweep. Real sockets on 127.0.0.1, port 0.
 */

import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { loadConfig } from "./config.ts";
import { AppError, Status } from "./errors.ts";
import { SalesService as SalesServiceDesc } from "../gen/sales_pb.ts";
import { GrpcSalesClient } from "./grpc/sales_client.ts";
import { type RunningServer, startServer } from "./main.ts";
import { loopbackEnv } from "./_test_loopback_env.ts";
import { eventually } from "./_test_eventually.ts";

const TOKEN = "integration-t0ken";
const encoder = new TextEncoder();
const CSV = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\nGarden,2024-01-03,4\n";
const RESULT_CSV = "Department Name,Total Number of Sales\nGarden,4\nToys,3\n";

async function withServer(
  env: Record<string, string>,
  fn: (server: RunningServer, storageDir: string, log: string[]) => Promise<void>,
  prepare?: (storageDir: string) => Promise<void>,
): Promise<void> {
  const storageDir = await Deno.makeTempDir({ prefix: "access_control_test_" });
  const log: string[] = [];
  try {
    await prepare?.(storageDir);
    const server = await startServer(
      loadConfig({
        ...loopbackEnv(storageDir),
        ...env,
      }),
      { log: (line) => log.push(line) },
    );
    try {
      await fn(server, storageDir, log);
    } finally {
      await server.shutdown(2_000);
    }
  } finally {
    await Deno.remove(storageDir, { recursive: true });
  }
}

async function resultFiles(storageDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${storageDir}/results`)) names.push(entry.name);
  return names.sort();
}

function grpcClient(server: RunningServer, authorization?: string): GrpcSalesClient {
  return new GrpcSalesClient(`127.0.0.1:${server.grpc.port}`, {
    metadata: authorization === undefined ? {} : { authorization },
  });
}

function grpcWebClient(server: RunningServer, authorization?: string) {
  return createClient(
    SalesServiceDesc,
    createGrpcWebTransport({
      baseUrl: `http://127.0.0.1:${server.web.port}`,
      interceptors: [(next) => (request) => {
        if (authorization !== undefined) request.header.set("authorization", authorization);
        return next(request);
      }],
    }),
  );
}

function unauthenticated(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof AppError, `not an AppError: ${error}`);
    assert.equal(error.code, Status.UNAUTHENTICATED, error.message);
    assert.match(error.message, pattern);
    return true;
  };
}

function connectUnauthenticated(pattern: RegExp) {
  return (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.code, Code.Unauthenticated, connectError.message);
    assert.match(connectError.rawMessage, pattern);
    return true;
  };
}

Deno.test({
  name:
    "startServer with SALES_API_TOKEN refuses grpc-js calls without the token and keeps no state",
  async fn(t) {
    await withServer({ SALES_API_TOKEN: TOKEN }, async (server, storageDir, log) => {
      assert.ok(log.some((line) => /^\[auth\] Every SalesService RPC requires/.test(line)));
      assert.ok(!log.join("\n").includes(TOKEN), "the token is never logged");
      const cases = [
        { name: "missing", authorization: undefined, message: /requires an access token/ },
        { name: "wrong", authorization: "Bearer wrong-token", message: /token is not valid/ },
        { name: "not bearer", authorization: `Basic ${TOKEN}`, message: /Malformed/ },
      ];
      // An upload started by someone with the token, which the others must not touch.
      const owner = grpcClient(server, `Bearer ${TOKEN}`);
      const { uploadId } = await owner.startUpload("owner.csv", 0);
      for (const { name, authorization, message } of cases) {
        await t.step(name, async () => {
          const client = grpcClient(server, authorization);
          try {
            const refused = unauthenticated(message);
            // Health checks stay open: load balancers and compose call them without a token.
            assert.equal(await client.checkHealth(), "SERVING");
            assert.equal(await client.checkHealth("sales.v1.SalesService"), "SERVING");
            await assert.rejects(client.upload(encoder.encode(CSV), "a.csv"), refused);
            const manyChunks = Array.from({ length: 64 }, () => encoder.encode(CSV));
            await assert.rejects(client.uploadStream(manyChunks, "a.csv"), refused);
            await assert.rejects(client.startUpload("a.csv", 0), refused);
            await assert.rejects(client.appendUpload(uploadId, 0, encoder.encode(CSV)), refused);
            await assert.rejects(client.finishUpload(uploadId), refused);
            await assert.rejects(client.cancelUpload(uploadId), refused);
            await assert.rejects(client.downloadResult("0".repeat(32)), refused);
            await assert.rejects(client.getResult("0".repeat(32)), refused);
          } finally {
            client.close();
          }
          // Only the owner's upload is in progress; nothing was written.
          assert.equal(server.service.uploadsInProgress, 1);
          assert.deepEqual(await resultFiles(storageDir), []);
        });
      }
      await t.step(
        "right token: every RPC works and the owner's upload was untouched",
        async () => {
          try {
            const progress = await owner.appendUpload(uploadId, 0, encoder.encode(CSV));
            assert.equal(progress.committedOffset, encoder.encode(CSV).length);
            assert.equal(progress.rows, 2);
            const finished = await owner.finishUpload(uploadId);
            assert.equal(
              new TextDecoder().decode(await owner.downloadResult(finished.resultId)),
              RESULT_CSV,
            );
            const streamed = await owner.uploadStream([encoder.encode(CSV)], "s.csv");
            assert.equal(streamed.rows, 2);
            const unary = await owner.upload(encoder.encode(CSV), "u.csv");
            assert.equal(unary.rows, 2);
            const again = await owner.startUpload("c.csv", 0);
            await owner.cancelUpload(again.uploadId);
            assert.equal(server.service.uploadsInProgress, 0);
            assert.equal((await resultFiles(storageDir)).length, 6, "3 results and their metadata");
          } finally {
            owner.close();
          }
        },
      );
    });
  },
});

Deno.test({
  name:
    "startServer with SALES_API_TOKEN refuses gRPC-Web calls without the token and keeps no state",
  async fn(t) {
    await withServer({ SALES_API_TOKEN: TOKEN }, async (server, storageDir) => {
      const cases = [
        { name: "missing", authorization: undefined, message: /requires an access token/ },
        { name: "wrong", authorization: "Bearer wrong-token", message: /token is not valid/ },
      ];
      for (const { name, authorization, message } of cases) {
        await t.step(name, async () => {
          const client = grpcWebClient(server, authorization);
          const refused = connectUnauthenticated(message);
          await assert.rejects(
            client.uploadCSV({ filename: "a.csv", data: encoder.encode(CSV) }),
            refused,
          );
          await assert.rejects(client.startUpload({ filename: "a.csv", size: 0n }), refused);
          await assert.rejects(
            client.appendUpload({
              uploadId: "0".repeat(32),
              offset: 0n,
              data: encoder.encode(CSV),
            }),
            refused,
          );
          await assert.rejects(client.finishUpload({ uploadId: "0".repeat(32) }), refused);
          await assert.rejects(client.cancelUpload({ uploadId: "0".repeat(32) }), refused);
          await assert.rejects(client.downloadResult({ resultId: "0".repeat(32) }), refused);
          await assert.rejects(client.getResult({ resultId: "0".repeat(32) }), refused);
          assert.equal(server.service.uploadsInProgress, 0);
          assert.deepEqual(await resultFiles(storageDir), []);
        });
      }
      await t.step("right token: the chunked upload and the download work", async () => {
        const client = grpcWebClient(server, `Bearer ${TOKEN}`);
        const { uploadId } = await client.startUpload({ filename: "w.csv", size: 0n });
        await client.appendUpload({ uploadId, offset: 0n, data: encoder.encode(CSV) });
        const finished = await client.finishUpload({ uploadId });
        assert.equal(finished.rows, 2n);
        const download = await client.downloadResult({ resultId: finished.resultId });
        assert.equal(new TextDecoder().decode(download.data), RESULT_CSV);
      });
      // The page itself is public: it asks for the token when an RPC is refused.
      const page = await fetch(`http://127.0.0.1:${server.web.port}/`);
      assert.equal(page.status, 200);
      await page.body?.cancel();
    });
  },
});

Deno.test({
  name: "startServer with SALES_URL_SECRET hands out signed download URLs the result server checks",
  async fn() {
    await withServer(
      { SALES_URL_SECRET: "url-secret", DOWNLOAD_URL_TTL_SEC: "120" },
      async (server, _, log) => {
        assert.ok(log.includes("[HTTP] Download URLs are signed and expire after 120 s"));
        const client = grpcClient(server);
        try {
          const before = Math.floor(Date.now() / 1000);
          const { downloadUrl, resultId } = await client.upload(encoder.encode(CSV), "a.csv");
          const url = new URL(downloadUrl);
          assert.equal(
            url.origin + url.pathname,
            `${server.publicResultsUrl}/results/${resultId}.csv`,
          );
          const expiry = Number(url.searchParams.get("exp"));
          assert.ok(expiry >= before + 120 && expiry <= Math.ceil(Date.now() / 1000) + 120);
          const local = `http://127.0.0.1:${server.http.port}${url.pathname}`;
          const signed = await fetch(`${local}${url.search}`);
          assert.equal(signed.status, 200);
          assert.equal(await signed.text(), RESULT_CSV);
          const unsigned = await fetch(local);
          assert.equal(unsigned.status, 403);
          assert.match(await unsigned.text(), /not signed/);
          // DownloadResult over gRPC needs no signature (it is behind the token when one is set).
          assert.equal(new TextDecoder().decode(await client.downloadResult(resultId)), RESULT_CSV);
        } finally {
          client.close();
        }
      },
    );
  },
});

Deno.test({
  name: "startServer without access control settings serves unsigned URLs and open RPCs",
  async fn() {
    await withServer({}, async (server, _, log) => {
      assert.ok(!log.some((line) => /\[auth\]|signed|Deleting results/.test(line)));
      const client = grpcClient(server);
      try {
        const { downloadUrl, resultId } = await client.upload(encoder.encode(CSV), "a.csv");
        assert.equal(downloadUrl, `${server.publicResultsUrl}/results/${resultId}.csv`);
        const response = await fetch(
          `http://127.0.0.1:${server.http.port}/results/${resultId}.csv`,
        );
        assert.equal(await response.text(), RESULT_CSV);
      } finally {
        client.close();
      }
    });
  },
});

Deno.test({
  name: "startServer with RESULT_TTL_HOURS deletes old results at start and keeps new ones",
  async fn() {
    const oldId = "0123456789abcdef0123456789abcdef";
    const newId = "fedcba9876543210fedcba9876543210";
    await withServer(
      { RESULT_TTL_HOURS: "2" },
      async (server, storageDir, log) => {
        assert.ok(log.includes("[storage] Deleting results older than 2 h"));
        await eventually(
          async () => (await resultFiles(storageDir)).length <= 1,
          "the old result to be deleted",
        );
        assert.deepEqual(await resultFiles(storageDir), [`${newId}.csv`]);
        assert.ok(log.includes("[storage] Deleted 1 result(s) older than 2 h"), log.join("\n"));
        const gone = await fetch(`http://127.0.0.1:${server.http.port}/results/${oldId}.csv`);
        assert.equal(gone.status, 404);
        await gone.body?.cancel();
      },
      async (storageDir) => {
        await Deno.mkdir(`${storageDir}/results`, { recursive: true });
        const threeHoursAgo = new Date(Date.now() - 3 * 3_600_000);
        await Deno.writeTextFile(`${storageDir}/results/${oldId}.csv`, RESULT_CSV);
        await Deno.utime(`${storageDir}/results/${oldId}.csv`, threeHoursAgo, threeHoursAgo);
        await Deno.writeTextFile(`${storageDir}/results/${newId}.csv`, RESULT_CSV);
      },
    );
  },
});
