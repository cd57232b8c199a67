import assert from "node:assert/strict";
import { gzipSync } from "fflate";
import { formatResultCsv } from "../aggregate/result_csv.ts";
import { SalesAggregator } from "../aggregate/sales_aggregator.ts";
import type { SalesInputOptions } from "../aggregate/sales_input.ts";
import { AppError, Status } from "../errors.ts";
import { ResultStore } from "../storage/result_store.ts";
import { createSalesService } from "./sales_service.ts";
import type { CallContext, UploadChunk } from "./types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A CSV with a header, quoted names, a bad row and enough rows to span many chunks. */
function sampleCsv(rows = 500): string {
  const lines = ["Department Name,Date,Number of Sales"];
  for (let i = 0; i < rows; i++) {
    const name = i % 7 === 0 ? `"Garden, Outdoor"` : `Dept ${i % 13}`;
    lines.push(`${name},2024-0${1 + (i % 9)}-1${i % 10},${i * 31 % 1000}`);
  }
  lines.push("Toys,2023-02-29,5");
  return lines.join("\r\n") + "\n";
}

/** What the aggregate command writes for the same bytes. */
function expectedCsv(csv: string): string {
  const aggregator = new SalesAggregator();
  aggregator.push(encoder.encode(csv));
  return formatResultCsv(aggregator.finish().totals);
}

function chunksOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return chunks;
}

async function* streamOf(bytes: Uint8Array, size: number): AsyncIterable<UploadChunk> {
  let first = true;
  for (const data of chunksOf(bytes, size)) {
    yield { data, filename: first ? "s.csv" : "" };
    first = false;
  }
}

function context(controller = new AbortController()): CallContext {
  return { signal: controller.signal, header: () => undefined };
}

function isAppError(code: Status, pattern?: RegExp) {
  return (error: unknown) =>
    error instanceof AppError && error.code === code &&
    (pattern === undefined || pattern.test(error.message));
}

async function setUp(
  options: { inputOptions?: SalesInputOptions; idleTimeoutSec?: number } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "sales_service_test_" });
  const store = await ResultStore.open(dir);
  let clock = 0;
  const service = createSalesService({
    store,
    publicResultsUrl: "http://results.test",
    uploadIdleTimeoutSec: options.idleTimeoutSec ?? 60,
    chunkSize: 1024,
    inputOptions: options.inputOptions,
    now: () => clock,
    expiryTimer: false,
  });
  const resultFiles = async () => {
    const names: string[] = [];
    for await (const entry of Deno.readDir(store.dir)) names.push(entry.name);
    return names;
  };
  return {
    store,
    service,
    resultFiles,
    advance: (ms: number) => clock += ms,
    async [Symbol.asyncDispose]() {
      service.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("createSalesService uploadCsv stores the aggregate command's result", async () => {
  await using t = await setUp();
  const csv = sampleCsv();
  const response = await t.service.uploadCsv(
    { data: encoder.encode(csv), filename: "a.csv" },
    context(),
  );
  assert.match(response.resultId, /^[0-9a-f]{32}$/);
  assert.equal(response.downloadUrl, `http://results.test/results/${response.resultId}.csv`);
  assert.equal(response.rows, 501);
  assert.equal(response.badRows, 1);
  assert.equal(response.departments, 14);
  assert.ok(response.elapsedSec >= 0);
  assert.deepEqual(response.badRowSamples, [
    { line: 502, reason: response.badRowSamples[0].reason, raw: "Toys,2023-02-29,5" },
  ]);
  const { data } = await t.service.downloadResult({ resultId: response.resultId }, context());
  assert.equal(decoder.decode(data), expectedCsv(csv));
  assert.equal(t.service.uploadsInProgress, 0);
});

Deno.test("createSalesService uploadCsvStream matches uploadCsv for any chunk size", async () => {
  await using t = await setUp();
  const bytes = encoder.encode(sampleCsv());
  for (const size of [1, 7, 100, 4096, bytes.length]) {
    const response = await t.service.uploadCsvStream(streamOf(bytes, size), context());
    assert.equal(response.rows, 501);
    const { data } = await t.service.downloadResult({ resultId: response.resultId }, context());
    assert.equal(decoder.decode(data), expectedCsv(sampleCsv()));
  }
  assert.equal(t.service.uploadsInProgress, 0);
});

Deno.test("createSalesService uploadCsvStream of no chunks stores an empty result", async () => {
  await using t = await setUp();
  const response = await t.service.uploadCsvStream((async function* () {})(), context());
  assert.equal(response.rows, 0);
  const { data } = await t.service.downloadResult({ resultId: response.resultId }, context());
  assert.equal(decoder.decode(data), "Department Name,Total Number of Sales\n");
});

Deno.test("createSalesService uploadCsvStream leaves nothing behind when the client leaves", async () => {
  await using t = await setUp();
  const controller = new AbortController();
  async function* chunks(): AsyncIterable<UploadChunk> {
    yield {
      data: encoder.encode("Department Name,Date,Number of Sales\nToys,2024-01-01,1\n"),
      filename: "x",
    };
    controller.abort();
    throw new Error("premature close");
  }
  await assert.rejects(
    t.service.uploadCsvStream(chunks(), context(controller)),
    isAppError(Status.CANCELLED),
  );
  assert.deepEqual(await t.resultFiles(), []);
  assert.equal(t.service.uploadsInProgress, 0);
});

Deno.test("createSalesService uploadCsvStream deletes the result of a client that left at the end", async () => {
  await using t = await setUp();
  const controller = new AbortController();
  async function* chunks(): AsyncIterable<UploadChunk> {
    yield { data: encoder.encode("Toys,2024-01-01,1\n"), filename: "x" };
  }
  const ctx = context(controller);
  const pending = t.service.uploadCsvStream(chunks(), ctx);
  controller.abort();
  await assert.rejects(pending, isAppError(Status.CANCELLED));
  assert.deepEqual(await t.resultFiles(), []);
});

Deno.test("createSalesService downloadResult rejects malformed and unknown ids", async () => {
  await using t = await setUp();
  await assert.rejects(
    t.service.downloadResult({ resultId: "0".repeat(32) }, context()),
    isAppError(Status.NOT_FOUND),
  );
  for (const resultId of ["", "../../etc/passwd", "A".repeat(32), `${"0".repeat(31)}/`]) {
    await assert.rejects(
      t.service.downloadResult({ resultId }, context()),
      isAppError(Status.INVALID_ARGUMENT),
    );
  }
});

Deno.test("createSalesService chunked upload matches the aggregate command", async () => {
  await using t = await setUp();
  const csv = sampleCsv();
  const bytes = encoder.encode(csv);
  const { uploadId, chunkSize } = await t.service.startUpload(
    { filename: "c.csv", size: bytes.length },
    context(),
  );
  assert.match(uploadId, /^[0-9a-f]{32}$/);
  assert.equal(chunkSize, 1024);
  let offset = 0;
  for (const data of chunksOf(bytes, 333)) {
    const progress = await t.service.appendUpload({ uploadId, offset, data }, context());
    offset += data.length;
    assert.equal(progress.committedOffset, offset);
    assert.ok(progress.rows > 0 || offset < 100);
  }
  assert.equal(t.service.uploadsInProgress, 1);
  const response = await t.service.finishUpload({ uploadId }, context());
  assert.equal(response.rows, 501);
  assert.equal(response.badRows, 1);
  const { data } = await t.service.downloadResult({ resultId: response.resultId }, context());
  assert.equal(decoder.decode(data), expectedCsv(csv));
  assert.equal(t.service.uploadsInProgress, 0);
});

Deno.test("createSalesService appendUpload acknowledges retried chunks without counting them twice", async () => {
  await using t = await setUp();
  const bytes = encoder.encode(sampleCsv());
  const { uploadId } = await t.service.startUpload({ filename: "r.csv", size: 0 }, context());
  const chunks = chunksOf(bytes, 500);
  let offset = 0;
  const offsets: number[] = [];
  for (const [i, data] of chunks.entries()) {
    offsets.push(offset);
    await t.service.appendUpload({ uploadId, offset, data }, context());
    offset += data.length;
    // Replay this chunk and the one before: a lost reply, or two in flight.
    const again = await t.service.appendUpload({ uploadId, offset: offsets[i], data }, context());
    assert.equal(again.committedOffset, offset);
    if (i > 0) {
      await t.service.appendUpload(
        { uploadId, offset: offsets[i - 1], data: chunks[i - 1] },
        context(),
      );
    }
  }
  const response = await t.service.finishUpload({ uploadId }, context());
  assert.equal(response.rows, 501);
  const { data } = await t.service.downloadResult({ resultId: response.resultId }, context());
  assert.equal(decoder.decode(data), expectedCsv(sampleCsv()));
});

Deno.test("createSalesService appendUpload rejects offsets that do not continue the upload", async (t) => {
  await using s = await setUp();
  const { uploadId } = await s.service.startUpload({ filename: "o.csv", size: 0 }, context());
  const first = encoder.encode("Department Name,Date,Number of Sales\nToys,2024-01-01,1\n");
  await s.service.appendUpload({ uploadId, offset: 0, data: first }, context());
  const committed = first.length;
  const cases = [
    { name: "a gap after the committed offset", offset: committed + 10, data: encoder.encode("x") },
    { name: "different bytes at a committed chunk", offset: 0, data: first.map((b) => b ^ 1) },
    { name: "a shorter piece of a committed chunk", offset: 0, data: first.subarray(0, 10) },
    { name: "a misaligned retry", offset: 5, data: first.subarray(5) },
  ];
  for (const { name, offset, data } of cases) {
    await t.step(name, async () => {
      await assert.rejects(
        s.service.appendUpload({ uploadId, offset, data }, context()),
        isAppError(Status.FAILED_PRECONDITION, new RegExp(`committed offset ${committed}$`)),
      );
    });
  }
  const response = await s.service.finishUpload({ uploadId }, context());
  assert.equal(response.rows, 1);
});

Deno.test("createSalesService finishUpload returns the same result when repeated", async () => {
  await using t = await setUp();
  const bytes = encoder.encode(sampleCsv(10));
  const { uploadId } = await t.service.startUpload(
    { filename: "f.csv", size: bytes.length },
    context(),
  );
  await t.service.appendUpload({ uploadId, offset: 0, data: bytes }, context());
  const [first, concurrent] = await Promise.all([
    t.service.finishUpload({ uploadId }, context()),
    t.service.finishUpload({ uploadId }, context()),
  ]);
  const later = await t.service.finishUpload({ uploadId }, context());
  assert.deepEqual(concurrent, first);
  assert.deepEqual(later, first);
  assert.equal((await t.resultFiles()).length, 1);
  // A retry of the last chunk is still acknowledged; new bytes are not accepted.
  const retry = await t.service.appendUpload({ uploadId, offset: 0, data: bytes }, context());
  assert.equal(retry.committedOffset, bytes.length);
  await assert.rejects(
    t.service.appendUpload(
      { uploadId, offset: bytes.length, data: encoder.encode("x") },
      context(),
    ),
    isAppError(Status.FAILED_PRECONDITION, /already finished/),
  );
});

Deno.test("createSalesService checks the declared size", async () => {
  await using t = await setUp();
  const { uploadId } = await t.service.startUpload({ filename: "d.csv", size: 10 }, context());
  await t.service.appendUpload({ uploadId, offset: 0, data: encoder.encode("Toys,") }, context());
  await assert.rejects(
    t.service.finishUpload({ uploadId }, context()),
    isAppError(Status.FAILED_PRECONDITION, /received 5 of 10 bytes/),
  );
  await assert.rejects(
    t.service.appendUpload({ uploadId, offset: 5, data: encoder.encode("2024-01-01") }, context()),
    isAppError(Status.OUT_OF_RANGE),
  );
  await t.service.appendUpload({ uploadId, offset: 5, data: encoder.encode("2024-") }, context());
  assert.equal((await t.service.finishUpload({ uploadId }, context())).rows, 1);
});

Deno.test("createSalesService expires idle chunked uploads and frees them", async () => {
  await using t = await setUp({ idleTimeoutSec: 60 });
  const { uploadId: idle } = await t.service.startUpload({ filename: "i.csv", size: 0 }, context());
  const { uploadId: busy } = await t.service.startUpload({ filename: "b.csv", size: 0 }, context());
  const data = encoder.encode("Toys,2024-01-01,1\n");
  t.advance(40_000);
  await t.service.appendUpload({ uploadId: busy, offset: 0, data }, context());
  assert.equal(t.service.expireIdleUploads(), 0);
  t.advance(30_000);
  assert.equal(t.service.expireIdleUploads(), 1);
  assert.equal(t.service.uploadsInProgress, 1);
  await assert.rejects(
    t.service.appendUpload({ uploadId: idle, offset: 0, data }, context()),
    isAppError(Status.NOT_FOUND, /expired after 60 s without activity/),
  );
  await assert.rejects(
    t.service.finishUpload({ uploadId: idle }, context()),
    isAppError(Status.NOT_FOUND),
  );
  assert.equal((await t.service.finishUpload({ uploadId: busy }, context())).rows, 1);
  t.advance(61_000);
  assert.equal(t.service.expireIdleUploads(), 1, "the finished upload is forgotten too");
  assert.equal(t.service.uploadsInProgress, 0);
});

Deno.test("createSalesService cancelUpload drops the upload", async () => {
  await using t = await setUp();
  const { uploadId } = await t.service.startUpload({ filename: "x.csv", size: 0 }, context());
  await t.service.appendUpload(
    { uploadId, offset: 0, data: encoder.encode("Toys,2024-01-01,1\n") },
    context(),
  );
  assert.deepEqual(await t.service.cancelUpload({ uploadId }, context()), {});
  assert.equal(t.service.uploadsInProgress, 0);
  await t.service.cancelUpload({ uploadId }, context());
  await assert.rejects(
    t.service.appendUpload({ uploadId, offset: 18, data: encoder.encode("x") }, context()),
    isAppError(Status.NOT_FOUND, /was cancelled/),
  );
  await assert.rejects(
    t.service.finishUpload({ uploadId }, context()),
    isAppError(Status.NOT_FOUND),
  );
  assert.deepEqual(await t.resultFiles(), []);
  await assert.rejects(
    t.service.cancelUpload({ uploadId: "0".repeat(32) }, context()),
    isAppError(Status.NOT_FOUND),
  );
});

Deno.test("createSalesService rejects malformed upload ids", async () => {
  await using t = await setUp();
  for (const uploadId of ["", "xyz", "../" + "0".repeat(29)]) {
    await assert.rejects(
      t.service.appendUpload({ uploadId, offset: 0, data: new Uint8Array() }, context()),
      isAppError(Status.INVALID_ARGUMENT),
    );
    await assert.rejects(
      t.service.finishUpload({ uploadId }, context()),
      isAppError(Status.INVALID_ARGUMENT),
    );
    await assert.rejects(
      t.service.cancelUpload({ uploadId }, context()),
      isAppError(Status.INVALID_ARGUMENT),
    );
  }
});

Deno.test("createSalesService ends a chunked upload the aggregator refuses", async () => {
  await using t = await setUp({ inputOptions: { maxDepartments: 1 } });
  const { uploadId } = await t.service.startUpload({ filename: "m.csv", size: 0 }, context());
  await assert.rejects(
    t.service.appendUpload({
      uploadId,
      offset: 0,
      data: encoder.encode("Toys,2024-01-01,1\nGames,2024-01-01,1\nBooks,2024-01-01,1\n"),
    }, context()),
    isAppError(Status.RESOURCE_EXHAUSTED),
  );
  assert.equal(t.service.uploadsInProgress, 0);
  await assert.rejects(
    t.service.finishUpload({ uploadId }, context()),
    isAppError(Status.RESOURCE_EXHAUSTED),
  );
  assert.deepEqual(await t.resultFiles(), []);
});

Deno.test("createSalesService finishUpload refuses an input that fails at its end every time and frees it", async (t) => {
  const gzipped = gzipSync(encoder.encode(sampleCsv()));
  const truncatedGzip = gzipped.subarray(0, gzipped.length >> 1);
  const cases = [
    // The last row has no LF, so the aggregator meets the third department only at the end.
    {
      name: "too many departments in the last row",
      data: encoder.encode("Toys,2024-01-01,1\nGames,2024-01-01,1\nBooks,2024-01-01,1"),
      code: Status.RESOURCE_EXHAUSTED,
      maxDepartments: 2,
    },
    {
      name: "truncated gzip",
      data: truncatedGzip,
      code: Status.INVALID_ARGUMENT,
      maxDepartments: 50,
    },
  ];
  for (const { name, data, code, maxDepartments } of cases) {
    await t.step(name, async () => {
      await using s = await setUp({ inputOptions: { maxDepartments } });
      const ctx = context();
      const { uploadId } = await s.service.startUpload(
        { filename: "e.csv", size: data.length },
        ctx,
      );
      await s.service.appendUpload({ uploadId, offset: 0, data }, ctx);
      await assert.rejects(s.service.finishUpload({ uploadId }, ctx), isAppError(code));
      assert.equal(s.service.uploadsInProgress, 0);
      // A retry must not store what is left of the refused input.
      await assert.rejects(s.service.finishUpload({ uploadId }, ctx), isAppError(code));
      assert.deepEqual(await s.resultFiles(), []);
    });
  }
});
