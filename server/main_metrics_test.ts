/**
 * Integration tests of what operators see, as `startServer` wires it, over real sockets on
 * 127.0.0.1 with ports picked by the system: `GET /metrics` on the result port (behind
 * `METRICS_TOKEN`) counts a finished and a failed upload on each transport, each upload writes one
 * JSON log line with every field, and `x-request-id` is echoed by grpc-js and gRPC-Web alike.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { loadConfig } from "./config.ts";
import { SalesService as SalesServiceDesc } from "../gen/sales_pb.ts";
import { GrpcSalesClient } from "./grpc/sales_client.ts";
import type { UploadResponse__Output } from "../gen/proto_loader/sales/v1/UploadResponse.ts";
import { type RunningServer, startServer } from "./main.ts";
import { loopbackEnv } from "./_test_loopback_env.ts";
import { parsePrometheusText, type Sample, sampleValue } from "./_test_prometheus_text.ts";

const METRICS_TOKEN = "metrics-t0ken";
const encoder = new TextEncoder();
const CSV = encoder.encode(
  "Department Name,Date,Number of Sales\nToys,2024-01-02,3\nGarden,2024-01-03,4\noops\n",
);
/** Larger than MAX_UPLOAD_BYTES below: refused with RESOURCE_EXHAUSTED. */
const TOO_BIG = encoder.encode(
  "Department Name,Date,Number of Sales\n" + "Toys,2024-01-02,3\n".repeat(20),
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Harness {
  server: RunningServer;
  /** The upload log lines so far, parsed. */
  lines: Record<string, unknown>[];
  grpcClient: GrpcSalesClient;
  webClient: ReturnType<typeof createClient<typeof SalesServiceDesc>>;
}

async function withServer(fn: (harness: Harness) => Promise<void>): Promise<void> {
  const storageDir = await Deno.makeTempDir({ prefix: "main_metrics_test_" });
  const lines: Record<string, unknown>[] = [];
  const server = await startServer(
    loadConfig({
      ...loopbackEnv(storageDir),
      METRICS_TOKEN,
      MAX_UPLOAD_BYTES: "200",
      REPLICA_ID: "replica-m1",
    }),
    { log: () => {}, uploadLog: (line) => lines.push(JSON.parse(line)) },
  );
  const grpcClient = new GrpcSalesClient(`127.0.0.1:${server.grpc.port}`);
  const webClient = createClient(
    SalesServiceDesc,
    createGrpcWebTransport({ baseUrl: `http://127.0.0.1:${server.web.port}` }),
  );
  try {
    await fn({ server, lines, grpcClient, webClient });
  } finally {
    grpcClient.close();
    await server.shutdown(2_000);
    await Deno.remove(storageDir, { recursive: true });
  }
}

interface GrpcOutcome {
  error: grpc.ServiceError | null;
  response: UploadResponse__Output | undefined;
  /** The `x-request-id` of the response headers. */
  requestId: string | undefined;
}

/** `UploadCSV` over grpc-js, keeping the response headers. */
function grpcUpload(
  client: GrpcSalesClient,
  data: Uint8Array,
  filename: string,
  requestId?: string,
): Promise<GrpcOutcome> {
  const metadata = new grpc.Metadata();
  if (requestId !== undefined) metadata.set("x-request-id", requestId);
  return new Promise((resolve) => {
    let echoed: string | undefined;
    const call = client.raw.UploadCSV(
      { data, filename },
      metadata,
      (error: grpc.ServiceError | null, response?: UploadResponse__Output) =>
        resolve({ error, response, requestId: echoed }),
    );
    call.on("metadata", (headers: grpc.Metadata) => {
      echoed = headers.get("x-request-id")[0]?.toString();
    });
  });
}

async function scrape(server: RunningServer, token?: string): Promise<Response> {
  return await fetch(`http://127.0.0.1:${server.http.port}/metrics`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
}

async function scrapeSamples(server: RunningServer): Promise<Sample[]> {
  const response = await scrape(server, METRICS_TOKEN);
  assert.equal(response.status, 200);
  return parsePrometheusText(await response.text());
}

function linesOf(lines: Record<string, unknown>[], transport: string) {
  return lines.filter((line) => line.transport === transport);
}

Deno.test({
  name:
    "startServer counts a finished and a failed upload per transport at /metrics, behind METRICS_TOKEN",
  fn: () =>
    withServer(async ({ server, lines, grpcClient, webClient }) => {
      const refused = await scrape(server);
      assert.equal(refused.status, 401);
      assert.match(refused.headers.get("www-authenticate")!, /^Bearer/);
      assert.match(await refused.text(), /METRICS_TOKEN/);
      const wrong = await scrape(server, "guess");
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();

      const ok = await grpcUpload(grpcClient, CSV, "grpc.csv", "grpc-ok");
      assert.equal(ok.error, null);
      const failed = await grpcUpload(grpcClient, TOO_BIG, "grpc-big.csv", "grpc-fail");
      assert.equal(failed.error?.code, grpc.status.RESOURCE_EXHAUSTED);

      const { uploadId } = await webClient.startUpload(
        { filename: "web.csv", size: BigInt(CSV.length) },
        { headers: { "x-request-id": "web-start" } },
      );
      await webClient.appendUpload(
        { uploadId, offset: 0n, data: CSV },
        { headers: { "x-request-id": "web-append" } },
      );
      const webResult = await webClient.finishUpload(
        { uploadId },
        { headers: { "x-request-id": "web-finish" } },
      );
      const webError = await webClient.uploadCSV(
        { data: TOO_BIG, filename: "web-big.csv" },
        { headers: { "x-request-id": "web-fail" } },
      ).catch((error) => error);
      assert.ok(webError instanceof ConnectError);
      assert.equal(webError.code, Code.ResourceExhausted);

      const samples = await scrapeSamples(server);
      for (const transport of ["grpc", "grpc-web"]) {
        const ended = linesOf(lines, transport);
        assert.equal(ended.length, 2, `${transport}: one line per upload`);
        const sum = (field: string) =>
          ended.reduce((total, line) => total + Number(line[field]), 0);
        const expected: [string, Record<string, string>, number][] = [
          ["sales_uploads_started_total", {}, 2],
          ["sales_uploads_finished_total", {}, 1],
          ["sales_uploads_failed_total", { code: "RESOURCE_EXHAUSTED" }, 1],
          ["sales_uploads_in_progress", {}, 0],
          ["sales_upload_rows_total", {}, sum("rows")],
          ["sales_upload_bad_rows_total", {}, 1],
          ["sales_upload_received_bytes_total", {}, sum("bytes")],
          ["sales_upload_duration_seconds_count", { outcome: "finished" }, 1],
          ["sales_upload_duration_seconds_count", { outcome: "failed" }, 1],
        ];
        for (const [name, labels, value] of expected) {
          assert.equal(
            sampleValue(samples, name, { transport, ...labels }),
            value,
            `${name} ${JSON.stringify({ transport, ...labels })}`,
          );
        }
        assert.ok(sum("bytes") >= CSV.length);
        assert.ok(sum("rows") >= 3);
      }
      assert.equal(sampleValue(samples, "sales_results_stored_total"), 2);
      assert.equal(sampleValue(samples, "sales_storage_errors_total", { operation: "write" }), 0);
      assert.equal(sampleValue(samples, "sales_replica_info", { replica: "replica-m1" }), 1);
      assert.ok(sampleValue(samples, "process_resident_memory_bytes")! > 0);

      const web = linesOf(lines, "grpc-web").find((line) => line.status === "OK")!;
      assert.equal(web.kind, "chunked");
      assert.equal(web.result_id, webResult.resultId);
      assert.equal(web.request_id, "web-finish");
    }),
});

Deno.test({
  name: "startServer writes one JSON line per upload with every field",
  fn: () =>
    withServer(async ({ lines, grpcClient, webClient }) => {
      const ok = await grpcUpload(grpcClient, CSV, "ok.csv", "line-ok");
      await grpcUpload(grpcClient, TOO_BIG, "big.csv", "line-fail");
      await webClient.uploadCSV({ data: CSV, filename: "web.csv" }, {
        headers: { "x-request-id": "line-web" },
      });
      assert.equal(lines.length, 3);
      const [finished, failed, web] = lines;
      const common = [
        "time",
        "replica",
        "transport",
        "peer",
        "request_id",
        "filename",
        "bytes",
        "rows",
        "bad_rows",
        "departments",
        "seconds",
        "status",
      ];
      for (const line of lines) {
        for (const field of common) assert.ok(field in line, `${field} in ${JSON.stringify(line)}`);
        assert.ok(!Number.isNaN(Date.parse(String(line.time))));
        assert.equal(new Date(String(line.time)).toISOString(), line.time);
        assert.equal(line.replica, "replica-m1");
        assert.equal(line.peer, "127.0.0.1");
        assert.ok(typeof line.seconds === "number" && line.seconds >= 0);
      }
      assert.deepEqual(
        [finished.transport, finished.request_id, finished.filename, finished.status],
        ["grpc", "line-ok", "ok.csv", "OK"],
      );
      assert.equal(finished.result_id, ok.response!.resultId);
      assert.deepEqual(
        [finished.bytes, finished.rows, finished.bad_rows, finished.departments],
        [CSV.length, 3, 1, 2],
      );
      assert.deepEqual(
        [failed.request_id, failed.status, failed.departments, "result_id" in failed],
        ["line-fail", "RESOURCE_EXHAUSTED", null, false],
      );
      assert.match(String(failed.message), /Upload too large/);
      assert.deepEqual([web.transport, web.request_id, web.status], ["grpc-web", "line-web", "OK"]);
    }),
});

Deno.test({
  name: "startServer echoes x-request-id on both transports, and makes one when there is none",
  fn: () =>
    withServer(async ({ lines, grpcClient, webClient }) => {
      const given = await grpcUpload(grpcClient, CSV, "a.csv", "echo-grpc");
      assert.equal(given.requestId, "echo-grpc");
      const failed = await grpcUpload(grpcClient, TOO_BIG, "b.csv", "echo-grpc-fail");
      assert.equal(failed.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(failed.requestId, "echo-grpc-fail");
      const made = await grpcUpload(grpcClient, CSV, "c.csv");
      assert.match(made.requestId!, UUID);
      const overlong = await grpcUpload(grpcClient, CSV, "d.csv", "x".repeat(129));
      assert.match(overlong.requestId!, UUID);

      const webEcho = async (requestId: string | undefined, data: Uint8Array) => {
        let echoed: string | null = null;
        const error = await webClient.uploadCSV({ data, filename: "w.csv" }, {
          headers: requestId === undefined ? {} : { "x-request-id": requestId },
          onHeader: (headers) => echoed = headers.get("x-request-id"),
        }).then(() => undefined, (error) => error);
        // connect passes the headers of a failed call on its error.
        if (error instanceof ConnectError) echoed ??= error.metadata.get("x-request-id");
        return echoed;
      };
      assert.equal(await webEcho("echo-web", CSV), "echo-web");
      assert.equal(await webEcho("echo-web-fail", TOO_BIG), "echo-web-fail");
      assert.match((await webEcho(undefined, CSV))!, UUID);

      // Each line carries the id its response echoed.
      assert.deepEqual(lines.map((line) => line.request_id), [
        "echo-grpc",
        "echo-grpc-fail",
        made.requestId,
        overlong.requestId,
        "echo-web",
        "echo-web-fail",
        lines[6].request_id,
      ]);
      assert.match(String(lines[6].request_id), UUID);
    }),
});
