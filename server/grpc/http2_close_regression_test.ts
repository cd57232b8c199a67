/**
 * Regression test for the runtime crash Deno is pinned against: Deno 2.9.4 to 2.9.6 abort in
 * `node:http2` when a client closes its connection after large streamed uploads
 * (denoland/deno#36788). The server runs as a child process so that an abort is observed as its
 * exit, not as the death of the test runner.
 */

import assert from "node:assert/strict";
import { GrpcSalesClient } from "./sales_client.ts";
import { startServerChild } from "../_test_server_child.ts";
import { consistently } from "../_test_eventually.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const UNTUNED_SERVER = new URL("./_test_untuned_server.ts", import.meta.url).pathname;
const UPLOAD_BYTES = 50 * 1000 * 1000;
const CHUNK_BYTES = 256 * 1024;

/** `bytes` of valid sales CSV, in chunks, generated on the fly. */
function* salesChunks(bytes: number): Generator<Uint8Array> {
  const encoder = new TextEncoder();
  const lines: string[] = [];
  for (let i = 0; i < 4096; i++) {
    lines.push(
      `Department ${i % 97},2024-${String(1 + (i % 12)).padStart(2, "0")}-${
        String(1 + (i % 28)).padStart(2, "0")
      },${i % 1000}\n`,
    );
  }
  const block = encoder.encode(lines.join(""));
  let sent = 0;
  while (sent < bytes) {
    const chunk = new Uint8Array(Math.min(CHUNK_BYTES, bytes - sent));
    for (let at = 0; at < chunk.length; at += block.length) {
      chunk.set(block.subarray(0, Math.min(block.length, chunk.length - at)), at);
    }
    sent += chunk.length;
    yield chunk;
  }
}

/** Runs `entry` as a child server, uploads 4 x 50 MB on one connection, closes it, checks the server. */
async function assertSurvivesConnectionClose(entry: string): Promise<void> {
  await using server = await startServerChild(entry, { storagePrefix: "http2_regression_" });
  const exitReport = async () => {
    const { code, signal } = await server.status;
    return `exit code ${code}, signal ${signal}\n${await server.stderr}`;
  };
  const address = `127.0.0.1:${server.grpcPort}`;

  // One client, so one HTTP/2 connection, for all four uploads.
  const client = new GrpcSalesClient(address);
  const resultIds: string[] = [];
  for (let i = 0; i < 4; i++) {
    const response = await client.uploadStream(salesChunks(UPLOAD_BYTES), `big-${i}.csv`);
    assert.ok(response.rows > 1_000_000);
    resultIds.push(response.resultId);
  }
  client.close();

  // The abort came right after the close; give it time to happen before checking.
  await consistently(() => !server.exited, "the server to stay up after the client closed", 1500)
    .catch(async () => assert.fail(`server died after the client closed: ${await exitReport()}`));

  const next = new GrpcSalesClient(address);
  try {
    assert.equal(await next.checkHealth(), "SERVING");
    const data = await next.downloadResult(resultIds[3]);
    assert.match(new TextDecoder().decode(data), /^Department Name,Total Number of Sales\n/);
    const small = await next.uploadStream(salesChunks(100_000), "small.csv");
    assert.ok(small.rows > 0);
  } finally {
    next.close();
  }
  if (server.exited) {
    assert.fail(`server died while serving the next client: ${await exitReport()}`);
  }

  // SIGTERM stops it cleanly.
  server.kill("SIGTERM");
  const { code } = await server.status;
  assert.equal(code, 0, await server.stderr);
}

Deno.test({
  name: "server survives a client closing its connection after four 50 MB streamed uploads",
  fn: () => assertSurvivesConnectionClose(MAIN),
});

Deno.test({
  name: "server with the runtime's default HTTP/2 settings survives the same connection close",
  fn: () => assertSurvivesConnectionClose(UNTUNED_SERVER),
});
