/**
 * What the service reports per upload, in-process: one JSON log line with every field and the
 * matching counters, whichever path the upload takes and however it ends.
 */

import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import { ResultStore } from "../storage/result_store.ts";
import { parsePrometheusText, sampleValue } from "../_test_prometheus_text.ts";
import { SalesMetrics } from "./metrics.ts";
import { createSalesService, type SalesServiceOptions } from "./sales_service.ts";
import type { CallContext, UploadChunk } from "./types.ts";
import { UploadReports } from "./upload_report.ts";

const encoder = new TextEncoder();
const CSV = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\nGarden,2024-01-03,4\nbad\n";
const CSV_BYTES = encoder.encode(CSV);
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
/** Every field a line has, whatever the outcome. */
const COMMON_FIELDS = [
  "time",
  "event",
  "replica",
  "transport",
  "peer",
  "request_id",
  "kind",
  "filename",
  "bytes",
  "rows",
  "bad_rows",
  "departments",
  "seconds",
  "status",
];

interface Harness {
  service: ReturnType<typeof createSalesService>;
  metrics: SalesMetrics;
  lines: Record<string, unknown>[];
  store: ResultStore;
  clock: { now: number };
  /** The value of one sample of this service's metrics. */
  sample(name: string, labels?: Record<string, string>): Promise<number | undefined>;
}

async function withService(
  options: Partial<SalesServiceOptions>,
  fn: (harness: Harness) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "upload_report_test_" });
  const store = await ResultStore.open(dir, { replicaId: "replica-a" });
  const metrics = new SalesMetrics({ replicaId: "replica-a", processMetrics: false });
  const lines: Record<string, unknown>[] = [];
  const clock = { now: 0 };
  const service = createSalesService({
    store,
    publicResultsUrl: "http://localhost:8080",
    metrics,
    uploadLog: (line) => {
      assert.ok(!line.includes("\n"), "one line per upload");
      lines.push(JSON.parse(line));
    },
    now: () => clock.now,
    expiryTimer: false,
    uploadIdleTimeoutSec: 60,
    ...options,
  });
  const sample = async (name: string, labels?: Record<string, string>) =>
    sampleValue(parsePrometheusText((await metrics.render()).body), name, labels);
  try {
    await fn({ service, metrics, lines, store, clock, sample });
  } finally {
    service.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A call over `transport` from 127.0.0.1 carrying `requestId` as its `x-request-id`. */
function call(
  requestId: string | undefined,
  transport = "grpc",
  controller = new AbortController(),
): CallContext {
  return {
    signal: controller.signal,
    header: (name) => (name === "x-request-id" ? requestId : undefined),
    peer: "127.0.0.1:40000",
    transport,
  };
}

function assertFields(line: Record<string, unknown>, extra: string[]): void {
  for (const field of [...COMMON_FIELDS, ...extra]) {
    assert.ok(field in line, `${field} missing from ${JSON.stringify(line)}`);
  }
  assert.match(String(line.time), ISO_TIME);
  assert.equal(line.event, "upload");
  assert.equal(line.replica, "replica-a");
  assert.equal(line.peer, "127.0.0.1");
  assert.equal(typeof line.seconds, "number");
}

async function* streamOf(chunks: Uint8Array[], filename: string): AsyncIterable<UploadChunk> {
  for (const [i, data] of chunks.entries()) yield { data, filename: i === 0 ? filename : "" };
}

Deno.test("createSalesService logs a finished unary upload with every field and counts it", async () => {
  await withService({}, async ({ service, lines, sample }) => {
    const response = await service.uploadCsv(
      { data: CSV_BYTES, filename: "sales.csv" },
      call("req-1"),
    );
    assert.equal(lines.length, 1);
    const [line] = lines;
    assertFields(line, ["result_id"]);
    assert.deepEqual(
      { ...line, time: undefined, seconds: undefined },
      {
        time: undefined,
        event: "upload",
        replica: "replica-a",
        transport: "grpc",
        peer: "127.0.0.1",
        request_id: "req-1",
        kind: "unary",
        filename: "sales.csv",
        bytes: CSV_BYTES.length,
        rows: 3,
        bad_rows: 1,
        departments: 2,
        seconds: undefined,
        status: "OK",
        result_id: response.resultId,
      },
    );
    assert.equal(await sample("sales_uploads_started_total", { transport: "grpc" }), 1);
    assert.equal(await sample("sales_uploads_finished_total", { transport: "grpc" }), 1);
    assert.equal(
      await sample("sales_upload_received_bytes_total", { transport: "grpc" }),
      CSV_BYTES.length,
    );
    assert.equal(await sample("sales_upload_rows_total", { transport: "grpc" }), 3);
    assert.equal(await sample("sales_upload_bad_rows_total", { transport: "grpc" }), 1);
    assert.equal(await sample("sales_uploads_in_progress", { transport: "grpc" }), 0);
    assert.equal(await sample("sales_results_stored_total"), 1);
    assert.equal(
      await sample("sales_upload_duration_seconds_count", {
        transport: "grpc",
        outcome: "finished",
      }),
      1,
    );
    assert.equal(await sample("sales_uploads_started_total", { transport: "grpc-web" }), 0);
  });
});

Deno.test("createSalesService logs a refused upload with its status and counts it as failed", async () => {
  await withService({ inputOptions: { maxBytes: 10 } }, async ({ service, lines, sample }) => {
    await assert.rejects(
      service.uploadCsv({ data: CSV_BYTES, filename: "big.csv" }, call("req-2", "grpc-web")),
    );
    assert.equal(lines.length, 1);
    const [line] = lines;
    assertFields(line, ["message"]);
    assert.equal(line.status, "RESOURCE_EXHAUSTED");
    assert.match(String(line.message), /Upload too large/);
    assert.equal(line.departments, null);
    assert.equal(line.transport, "grpc-web");
    assert.equal(line.request_id, "req-2");
    assert.equal("result_id" in line, false);
    assert.equal(
      await sample("sales_uploads_failed_total", {
        transport: "grpc-web",
        code: "RESOURCE_EXHAUSTED",
      }),
      1,
    );
    assert.equal(await sample("sales_uploads_finished_total", { transport: "grpc-web" }), 0);
    assert.equal(await sample("sales_uploads_in_progress", { transport: "grpc-web" }), 0);
    assert.equal(await sample("sales_results_stored_total"), 0);
  });
});

Deno.test("createSalesService reports a refusal before any run opened, as started and failed", async () => {
  await withService({ maxConcurrentUploads: 0 }, async ({ service, lines, sample }) => {
    await assert.rejects(service.uploadCsv({ data: CSV_BYTES, filename: "a.csv" }, call("r")));
    await assert.rejects(service.startUpload({ filename: "b.csv", size: 0 }, call("s")));
    assert.deepEqual(lines.map((line) => [line.kind, line.status, line.filename, line.bytes]), [
      ["unary", "RESOURCE_EXHAUSTED", "a.csv", 0],
      ["chunked", "RESOURCE_EXHAUSTED", "b.csv", 0],
    ]);
    assert.equal(await sample("sales_uploads_started_total", { transport: "grpc" }), 2);
    assert.equal(
      await sample("sales_uploads_failed_total", { transport: "grpc", code: "RESOURCE_EXHAUSTED" }),
      2,
    );
    assert.equal(await sample("sales_uploads_in_progress", { transport: "grpc" }), 0);
  });
});

Deno.test("createSalesService reports streams, finished and cancelled by the client", async () => {
  await withService({}, async ({ service, lines, sample }) => {
    await service.uploadCsvStream(
      streamOf([CSV_BYTES.subarray(0, 20), CSV_BYTES.subarray(20)], "s.csv"),
      call("stream-1"),
    );
    const controller = new AbortController();
    async function* cut(): AsyncIterable<UploadChunk> {
      yield { data: CSV_BYTES.subarray(0, 20), filename: "cut.csv" };
      controller.abort();
      throw new Error("stream reset");
    }
    await assert.rejects(service.uploadCsvStream(cut(), call("stream-2", "grpc", controller)));
    assert.deepEqual(
      lines.map((line) => [line.kind, line.filename, line.status, line.bytes, line.request_id]),
      [
        ["stream", "s.csv", "OK", CSV_BYTES.length, "stream-1"],
        ["stream", "cut.csv", "CANCELLED", 20, "stream-2"],
      ],
    );
    assert.equal(
      await sample("sales_uploads_failed_total", { transport: "grpc", code: "CANCELLED" }),
      1,
    );
    assert.equal(
      await sample("sales_upload_received_bytes_total", { transport: "grpc" }),
      CSV_BYTES.length + 20,
    );
  });
});

Deno.test("createSalesService reports a chunked upload once, at FinishUpload, with its latest request id", async () => {
  await withService({}, async ({ service, lines, sample }) => {
    const { uploadId } = await service.startUpload(
      { filename: "c.csv", size: CSV_BYTES.length },
      call("start", "grpc-web"),
    );
    assert.equal(await sample("sales_uploads_in_progress", { transport: "grpc-web" }), 1);
    await service.appendUpload(
      { uploadId, offset: 0, data: CSV_BYTES },
      call("append", "grpc-web"),
    );
    assert.equal(lines.length, 0);
    const response = await service.finishUpload({ uploadId }, call("finish", "grpc-web"));
    // A repeated FinishUpload returns the same result and writes no second line.
    await service.finishUpload({ uploadId }, call("again", "grpc-web"));
    assert.equal(lines.length, 1);
    const [line] = lines;
    assertFields(line, ["result_id", "upload_id"]);
    assert.equal(line.kind, "chunked");
    assert.equal(line.upload_id, uploadId);
    assert.equal(line.request_id, "finish");
    assert.equal(line.result_id, response.resultId);
    assert.equal(line.rows, 3);
    assert.equal(line.bytes, CSV_BYTES.length);
    assert.equal(await sample("sales_uploads_in_progress", { transport: "grpc-web" }), 0);
    assert.equal(await sample("sales_uploads_finished_total", { transport: "grpc-web" }), 1);
    assert.equal(await sample("sales_uploads_started_total", { transport: "grpc-web" }), 1);
  });
});

Deno.test("createSalesService reports chunked uploads cancelled, expired, refused and cut by shutdown", async () => {
  await withService(
    { inputOptions: { maxBytes: 40 } },
    async ({ service, lines, clock, sample }) => {
      const cancelled = await service.startUpload({ filename: "x.csv", size: 0 }, call("s1"));
      await service.cancelUpload({ uploadId: cancelled.uploadId }, call("cancel"));
      await service.cancelUpload({ uploadId: cancelled.uploadId }, call("cancel-again"));

      const expiring = await service.startUpload({ filename: "y.csv", size: 0 }, call("s2"));
      await service.appendUpload(
        { uploadId: expiring.uploadId, offset: 0, data: CSV_BYTES.subarray(0, 10) },
        call("a2"),
      );
      clock.now += 61_000;
      assert.equal(service.expireIdleUploads(), 1);

      const refused = await service.startUpload({ filename: "z.csv", size: 0 }, call("s3"));
      await assert.rejects(
        service.appendUpload(
          { uploadId: refused.uploadId, offset: 0, data: CSV_BYTES },
          call("a3"),
        ),
      );

      await service.startUpload({ filename: "w.csv", size: 0 }, call("s4"));
      service.close();

      assert.deepEqual(
        lines.map((line) => [line.filename, line.status, line.request_id, line.bytes]),
        [
          ["x.csv", "CANCELLED", "cancel", 0],
          ["y.csv", "NOT_FOUND", "a2", 10],
          ["z.csv", "RESOURCE_EXHAUSTED", "a3", CSV_BYTES.length],
          ["w.csv", "UNAVAILABLE", "s4", 0],
        ],
      );
      assert.match(String(lines[1].message), /expired after 60 s without activity/);
      assert.equal(await sample("sales_uploads_in_progress", { transport: "grpc" }), 0);
      assert.equal(await sample("sales_uploads_started_total", { transport: "grpc" }), 4);
    },
  );
});

Deno.test("createSalesService counts a failed result write as a storage error", async () => {
  await withService({}, async ({ service, lines, store, sample }) => {
    const { uploadId } = await service.startUpload({ filename: "c.csv", size: 0 }, call("s"));
    await service.appendUpload({ uploadId, offset: 0, data: CSV_BYTES }, call("a"));
    // The results folder vanishing makes the write fail, even for root.
    await Deno.remove(store.dir, { recursive: true });
    await assert.rejects(service.finishUpload({ uploadId }, call("f1")));
    await assert.rejects(service.uploadCsv({ data: CSV_BYTES, filename: "u.csv" }, call("u")));
    assert.equal(await sample("sales_storage_errors_total", { operation: "write" }), 2);
    assert.equal(await sample("sales_results_stored_total"), 0);
    // The chunked upload may still finish: only the unary one has ended.
    assert.deepEqual(lines.map((line) => [line.kind, line.status === "OK"]), [["unary", false]]);
    await Deno.mkdir(store.dir);
    await service.finishUpload({ uploadId }, call("f2"));
    assert.deepEqual(lines.map((line) => [line.kind, line.status, line.request_id]), [
      ["unary", lines[0].status, "u"],
      ["chunked", "OK", "f2"],
    ]);
    assert.equal(await sample("sales_results_stored_total"), 1);
  });
});

Deno.test("createSalesService counts a failed result read as a storage error, not an unknown id", async () => {
  await withService({}, async ({ service, store, sample }) => {
    const { resultId } = await service.uploadCsv({ data: CSV_BYTES, filename: "a.csv" }, call("u"));
    await assert.rejects(service.downloadResult({ resultId: "0".repeat(32) }, call("d1")));
    assert.equal(await sample("sales_storage_errors_total", { operation: "read" }), 0);
    // A directory where the file should be: reading it fails for a reason other than absence.
    await Deno.remove(`${store.dir}/${resultId}.csv`);
    await Deno.mkdir(`${store.dir}/${resultId}.csv`);
    await assert.rejects(service.downloadResult({ resultId }, call("d2")));
    assert.equal(await sample("sales_storage_errors_total", { operation: "read" }), 1);
  });
});

Deno.test("UploadReports writes a hostile file name as one escaped, bounded line", () => {
  const lines: string[] = [];
  const reports = new UploadReports({ log: (line) => lines.push(line) });
  const name = `evil\n{"status":"OK"}\r\x1b[2J${"n".repeat(1000)}`;
  reports.start({ transport: "grpc", peer: "::1", requestId: "r" }, "unary", name)
    .failed(new Error("boom"));
  assert.equal(lines.length, 1);
  assert.equal(lines[0].includes("\n"), false);
  assert.equal(lines[0].includes("\r"), false);
  assert.equal(lines[0].includes("\x1b"), false);
  const line = JSON.parse(lines[0]);
  assert.equal(line.filename, `${name.slice(0, 256)}…`);
  assert.equal(line.status, "INTERNAL");
  assert.equal(line.message, "Internal server error");
});

Deno.test("UploadReports ends a report once, and a failing log does not fail the upload", () => {
  let calls = 0;
  const reports = new UploadReports({
    log: () => {
      calls++;
      throw new Deno.errors.BrokenPipe("stdout closed");
    },
  });
  const report = reports.start({ transport: "grpc", peer: "::1", requestId: "r" }, "unary", "a");
  report.failed({ code: Status.DEADLINE_EXCEEDED, rawMessage: "late" });
  report.failed(new Error("again"));
  assert.equal(calls, 1);
  assert.equal(report.ended, true);
});

Deno.test("UploadReport reports a cancellation by its signal's status when that says more", () => {
  const lines: Record<string, unknown>[] = [];
  const reports = new UploadReports({ log: (line) => lines.push(JSON.parse(line)) });
  const origin = { transport: "grpc-web", peer: "::1", requestId: "r" };
  const cancelled = new AppError(Status.CANCELLED, "The client cancelled the upload");
  const deadline = new AbortController();
  deadline.abort({ code: Status.DEADLINE_EXCEEDED, rawMessage: "the operation timed out" });
  reports.start(origin, "stream", "a").failed(cancelled, deadline.signal);
  const ended = new AbortController();
  ended.abort(new AppError(Status.CANCELLED, "The call ended"));
  reports.start(origin, "stream", "b").failed(cancelled, ended.signal);
  assert.deepEqual(lines.map((line) => [line.status, line.message]), [
    ["DEADLINE_EXCEEDED", "the operation timed out"],
    ["CANCELLED", "The client cancelled the upload"],
  ]);
});
