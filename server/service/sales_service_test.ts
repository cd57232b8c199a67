import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { formatResultCsv } from "../aggregate/_reference.ts";
import { SalesAggregator } from "../aggregate/sales_aggregator.ts";
import type { SalesInputOptions } from "../aggregate/sales_input.ts";
import { AppError, Status } from "../errors.ts";
import { ResultStore } from "../storage/result_store.ts";
import { chunksOf } from "../_test_bytes.ts";
import { eventually } from "../_test_eventually.ts";
import { ClientAddresses } from "./client_address.ts";
import { createSalesService, MAX_FILENAME_LENGTH, MAX_UPLOAD_FILES } from "./sales_service.ts";
import type { CallContext, UploadChunk, UploadResponse } from "./types.ts";
import { SIGNED_URL_TTL_SEC, startSignedSalesService } from "../_test_signed_sales_service.ts";
import {
  appends,
  CORRUPT_SECOND,
  expectedResult,
  sizeOf,
  streamChunks,
  type TestFile,
  THREE_FILES,
  TWO_FILES,
} from "./_test_multi_file.ts";

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

/** A call from `peer`, with an `x-forwarded-for` header when given. */
function from(peer: string, forwardedFor?: string): CallContext {
  return {
    signal: new AbortController().signal,
    header: (name) => (name === "x-forwarded-for" ? forwardedFor : undefined),
    peer,
  };
}

function isAppError(code: Status, pattern?: RegExp) {
  return (error: unknown) =>
    error instanceof AppError && error.code === code &&
    (pattern === undefined || pattern.test(error.message));
}

async function setUp(
  options: {
    inputOptions?: SalesInputOptions;
    idleTimeoutSec?: number;
    maxLifetimeSec?: number;
    maxUploadsPerClient?: number;
    maxConcurrentUploads?: number;
    trustedProxies?: string[];
  } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "sales_service_test_" });
  const store = await ResultStore.open(dir);
  let clock = 0;
  const service = createSalesService({
    store,
    publicResultsUrl: "http://results.test",
    uploadIdleTimeoutSec: options.idleTimeoutSec ?? 60,
    uploadMaxLifetimeSec: options.maxLifetimeSec,
    maxUploadsPerClient: options.maxUploadsPerClient,
    maxConcurrentUploads: options.maxConcurrentUploads,
    clientAddresses: new ClientAddresses(options.trustedProxies),
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
    {
      line: 502,
      reason: response.badRowSamples[0].reason,
      raw: "Toys,2023-02-29,5",
      file: "a.csv",
      fileIndex: 0,
    },
  ]);
  assert.deepEqual(response.files, [{ name: "a.csv", rows: 501, badRows: 1, departments: 14 }]);
  assert.equal(response.pagePath, `/r/${response.resultId}`);
  const { data } = await t.service.downloadResult({ resultId: response.resultId }, context());
  assert.equal(decoder.decode(data), expectedCsv(csv));
  assert.equal(t.service.uploadsInProgress, 0);
});

Deno.test("createSalesService refuses a file name past MAX_FILENAME_LENGTH on every path", async () => {
  await using t = await setUp();
  const long = "x".repeat(MAX_FILENAME_LENGTH + 1);
  const data = encoder.encode(sampleCsv(2));
  const tooLong = isAppError(Status.INVALID_ARGUMENT, /File name too long: 1025 characters/);
  await assert.rejects(t.service.uploadCsv({ data, filename: long }, context()), tooLong);
  const longStream = (async function* () {
    yield { data, filename: long };
  })();
  await assert.rejects(t.service.uploadCsvStream(longStream, context()), tooLong);
  await assert.rejects(t.service.startUpload({ filename: long, size: 0 }, context()), tooLong);
  assert.equal(t.service.uploadsInProgress, 0);
  // The longest name allowed still goes through.
  const response = await t.service.uploadCsv(
    { data, filename: "y".repeat(MAX_FILENAME_LENGTH) },
    context(),
  );
  assert.equal(response.rows, 3);
  assert.deepEqual((await t.resultFiles()).sort(), [
    `${response.resultId}.csv`,
    `${response.resultId}.json`,
  ]);
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
  // Random hex, then the replica holding it (the store's replica id).
  assert.match(uploadId, /^[0-9a-f]{32}\.local$/);
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
  assert.equal((await t.resultFiles()).length, 2, "one result and its metadata");
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

Deno.test("createSalesService restarts a chunked upload's idle timer only on committed bytes", async (t) => {
  const row = encoder.encode("Toys,2024-01-01,1\n");
  type Service = Awaited<ReturnType<typeof setUp>>["service"];
  // Each call is made every 15 s after the last committed bytes; none may keep the upload alive.
  const cases: {
    name: string;
    finished?: boolean;
    call: (service: Service, uploadId: string) => Promise<unknown>;
    code?: Status;
  }[] = [
    {
      name: "an empty append",
      call: (service, uploadId) =>
        service.appendUpload({ uploadId, offset: row.length, data: new Uint8Array() }, context()),
    },
    {
      name: "a repeated append",
      call: (service, uploadId) =>
        service.appendUpload({ uploadId, offset: 0, data: row }, context()),
    },
    {
      name: "an append at a wrong offset",
      call: (service, uploadId) =>
        service.appendUpload({ uploadId, offset: 3, data: row }, context()),
      code: Status.FAILED_PRECONDITION,
    },
    {
      name: "an append past the declared size",
      call: (service, uploadId) =>
        service.appendUpload(
          { uploadId, offset: row.length, data: encoder.encode("x".repeat(100)) },
          context(),
        ),
      code: Status.OUT_OF_RANGE,
    },
    {
      name: "a refused FinishUpload",
      call: (service, uploadId) => service.finishUpload({ uploadId }, context()),
      code: Status.FAILED_PRECONDITION,
    },
    {
      name: "an append after FinishUpload",
      finished: true,
      call: (service, uploadId) =>
        service.appendUpload({ uploadId, offset: row.length * 2, data: row }, context()),
      code: Status.FAILED_PRECONDITION,
    },
    {
      name: "a repeated FinishUpload",
      finished: true,
      call: (service, uploadId) => service.finishUpload({ uploadId }, context()),
    },
  ];
  for (const { name, finished, call, code } of cases) {
    await t.step(name, async () => {
      await using s = await setUp({ idleTimeoutSec: 60 });
      const { uploadId } = await s.service.startUpload(
        { filename: "h.csv", size: row.length * 2 },
        context(),
      );
      await s.service.appendUpload({ uploadId, offset: 0, data: row }, context());
      if (finished) {
        await s.service.appendUpload({ uploadId, offset: row.length, data: row }, context());
        await s.service.finishUpload({ uploadId }, context());
      }
      for (let elapsed = 15_000; elapsed <= 60_000; elapsed += 15_000) {
        s.advance(15_000);
        const outcome = await call(s.service, uploadId).then(() => undefined, (error) => error);
        if (code === undefined) assert.equal(outcome, undefined);
        else assert.ok(isAppError(code)(outcome), `${elapsed} ms: ${outcome}`);
      }
      assert.equal(s.service.expireIdleUploads(), 0, "60 s after the last bytes, not yet expired");
      s.advance(1000);
      assert.equal(s.service.expireIdleUploads(), 1);
      assert.equal(s.service.uploadsInProgress, 0);
      await assert.rejects(
        call(s.service, uploadId),
        isAppError(Status.NOT_FOUND, /expired after 60 s without activity/),
      );
    });
  }
});

Deno.test("createSalesService drops a chunked upload at its maximum lifetime however active", async () => {
  await using t = await setUp({ idleTimeoutSec: 60, maxLifetimeSec: 100 });
  const row = encoder.encode("Toys,2024-01-01,1\n");
  const swept = await t.service.startUpload({ filename: "s.csv", size: 0 }, from("192.0.2.1"));
  const called = await t.service.startUpload({ filename: "c.csv", size: 0 }, from("192.0.2.1"));
  let offset = 0;
  for (let elapsed = 30_000; elapsed <= 90_000; elapsed += 30_000) {
    t.advance(30_000);
    for (const { uploadId } of [swept, called]) {
      await t.service.appendUpload({ uploadId, offset, data: row }, context());
    }
    offset += row.length;
  }
  assert.equal(t.service.expireIdleUploads(), 0);
  t.advance(10_001);
  // Between sweeps, a call finds the upload gone as well.
  await assert.rejects(
    t.service.appendUpload({ uploadId: called.uploadId, offset, data: row }, context()),
    isAppError(
      Status.NOT_FOUND,
      /^Upload [0-9a-f]{32}\.local passed its maximum lifetime of 100 s \(UPLOAD_MAX_LIFETIME_SEC\)/,
    ),
  );
  assert.equal(t.service.expireIdleUploads(), 1);
  assert.equal(t.service.uploadsInProgress, 0);
  assert.equal(t.service.uploadsInProgressFor("192.0.2.1"), 0);
  for (const { uploadId } of [swept, called]) {
    await assert.rejects(
      t.service.finishUpload({ uploadId }, context()),
      isAppError(Status.NOT_FOUND, /maximum lifetime/),
    );
  }
  assert.deepEqual(await t.resultFiles(), []);
});

Deno.test("createSalesService limits the uploads in progress of each client", async () => {
  await using t = await setUp({ maxUploadsPerClient: 2, trustedProxies: ["10.0.0.0/8"] });
  const csv = { data: encoder.encode("Toys,2024-01-01,1\n"), filename: "u.csv" };
  const client = "192.0.2.1";
  await t.service.startUpload({ filename: "1.csv", size: 0 }, from(`${client}:40000`));
  // Behind a trusted proxy, the forwarded address is the client.
  await t.service.startUpload({ filename: "2.csv", size: 0 }, from("10.0.0.1:8080", client));
  assert.equal(t.service.uploadsInProgressFor(client), 2);
  const overLimit = isAppError(
    Status.RESOURCE_EXHAUSTED,
    /^Too many uploads in progress for 192\.0\.2\.1 \(the limit is 2\): MAX_UPLOADS_PER_CLIENT reached/,
  );
  const refusals = [
    () => t.service.startUpload({ filename: "3.csv", size: 0 }, from(`${client}:40001`)),
    () => t.service.uploadCsv(csv, from(client)),
    () => t.service.uploadCsvStream(streamOf(csv.data, 4), from(client)),
    // A header from an untrusted peer is not believed: the client is still its own address.
    () => t.service.startUpload({ filename: "4.csv", size: 0 }, from(client, "198.51.100.9")),
    () => t.service.startUpload({ filename: "5.csv", size: 0 }, from(`[::ffff:${client}]:1`)),
  ];
  for (const refused of refusals) {
    const error = await refused().then(() => assert.fail("not refused"), (error) => error);
    assert.ok(overLimit(error), String(error));
    assert.equal((error as AppError).retryAfterMs, 2000);
  }
  // Other clients are not affected, even through the same proxy.
  assert.equal((await t.service.uploadCsv(csv, from("192.0.2.2"))).rows, 1);
  assert.equal((await t.service.uploadCsv(csv, from("10.0.0.1", "198.51.100.9"))).rows, 1);
  await t.service.startUpload({ filename: "6.csv", size: 0 }, from("2001:db8::1"));
  assert.equal(t.service.uploadsInProgressFor("2001:db8::1"), 1);
  assert.equal(t.service.uploadsInProgressFor(client), 2);
  assert.equal(t.service.uploadsInProgress, 3);
});

Deno.test("createSalesService frees a client's upload slot however the upload ends", async (t) => {
  const client = "192.0.2.1";
  const row = encoder.encode("Toys,2024-01-01,1\n");
  type Setup = Awaited<ReturnType<typeof setUp>>;
  const cases: { name: string; end: (s: Setup, uploadId: string) => Promise<unknown> }[] = [
    {
      name: "finished",
      end: async (s, uploadId) => {
        await s.service.appendUpload({ uploadId, offset: 0, data: row }, context());
        await s.service.finishUpload({ uploadId }, context());
      },
    },
    { name: "cancelled", end: (s, uploadId) => s.service.cancelUpload({ uploadId }, context()) },
    {
      name: "expired",
      end: (s) => Promise.resolve(s.advance(61_000)),
    },
    {
      name: "past its maximum lifetime",
      end: async (s, uploadId) => {
        for (let i = 0; i < 3; i++) {
          s.advance(40_000);
          await s.service.appendUpload(
            { uploadId, offset: i * row.length, data: row },
            context(),
          );
        }
        // 151 s after StartUpload, 31 s after the last bytes.
        s.advance(31_000);
      },
    },
    {
      name: "refused by the aggregator",
      end: async (s, uploadId) => {
        const rows = encoder.encode("A,2024-01-01,1\nB,2024-01-01,1\nC,2024-01-01,1\n");
        await s.service.appendUpload({ uploadId, offset: 0, data: rows }, context()).catch(
          () => {},
        );
      },
    },
  ];
  for (const { name, end } of cases) {
    await t.step(name, async () => {
      await using s = await setUp({
        maxUploadsPerClient: 1,
        idleTimeoutSec: 60,
        maxLifetimeSec: 150,
        inputOptions: { maxDepartments: 2 },
      });
      const { uploadId } = await s.service.startUpload(
        { filename: "a.csv", size: 0 },
        from(client),
      );
      await assert.rejects(
        s.service.startUpload({ filename: "b.csv", size: 0 }, from(client)),
        isAppError(Status.RESOURCE_EXHAUSTED, /MAX_UPLOADS_PER_CLIENT/),
      );
      await end(s, uploadId);
      s.service.expireIdleUploads();
      assert.equal(s.service.uploadsInProgressFor(client), 0);
      await s.service.startUpload({ filename: "c.csv", size: 0 }, from(client));
      assert.equal(s.service.uploadsInProgressFor(client), 1);
    });
  }
});

Deno.test("createSalesService counts a streaming call against its client while it is in flight", async () => {
  await using t = await setUp({ maxUploadsPerClient: 1 });
  const client = "192.0.2.1";
  const more = Promise.withResolvers<void>();
  async function* chunks(): AsyncIterable<UploadChunk> {
    yield { data: encoder.encode("Toys,2024-01-01,1\n"), filename: "s.csv" };
    await more.promise;
    yield { data: encoder.encode("Toys,2024-01-02,2\n"), filename: "" };
  }
  const streaming = t.service.uploadCsvStream(chunks(), from(client));
  await eventually(() => t.service.uploadsInProgressFor(client) > 0, "the stream to hold a slot");
  assert.equal(t.service.uploadsInProgressFor(client), 1, "the stream holds a slot");
  await assert.rejects(
    t.service.startUpload({ filename: "b.csv", size: 0 }, from(client)),
    isAppError(Status.RESOURCE_EXHAUSTED, /MAX_UPLOADS_PER_CLIENT/),
  );
  more.resolve();
  assert.equal((await streaming).rows, 2);
  assert.equal(t.service.uploadsInProgressFor(client), 0);

  // A stream that breaks frees its slot too.
  async function* broken(): AsyncIterable<UploadChunk> {
    yield { data: encoder.encode("Toys,2024-01-01,1\n"), filename: "s.csv" };
    throw new AppError(Status.CANCELLED, "The client went away");
  }
  await assert.rejects(
    t.service.uploadCsvStream(broken(), from(client)),
    isAppError(Status.CANCELLED),
  );
  assert.equal(t.service.uploadsInProgressFor(client), 0);
  assert.equal(t.service.uploadsInProgress, 0);
});

Deno.test("createSalesService names MAX_CONCURRENT_UPLOADS when the server is full", async () => {
  await using t = await setUp({ maxConcurrentUploads: 1, maxUploadsPerClient: 5 });
  await t.service.startUpload({ filename: "a.csv", size: 0 }, from("192.0.2.1"));
  const error = await t.service.startUpload({ filename: "b.csv", size: 0 }, from("192.0.2.2"))
    .then(() => assert.fail("not refused"), (error) => error);
  assert.ok(
    isAppError(
      Status.RESOURCE_EXHAUSTED,
      /^Too many uploads in progress \(the limit is 1\): MAX_CONCURRENT_UPLOADS reached/,
    )(error),
    String(error),
  );
  assert.equal((error as AppError).retryAfterMs, 2000);
});

/** Checks a multi-file response and its stored result against the reference, and GetResult. */
async function assertMultiFileResult(
  t: Awaited<ReturnType<typeof setUp>>,
  response: UploadResponse,
  files: readonly TestFile[],
): Promise<void> {
  const expected = await expectedResult(files);
  assert.equal(response.rows, expected.rows);
  assert.equal(response.badRows, expected.badRows);
  assert.equal(response.departments, expected.departments);
  assert.deepEqual(response.files, expected.files);
  assert.deepEqual(response.badRowSamples, expected.badRowSamples);
  assert.equal(response.pagePath, `/r/${response.resultId}`);
  const { data } = await t.service.downloadResult({ resultId: response.resultId }, context());
  assert.equal(decoder.decode(data), expected.csv);
  const described = await t.service.getResult({ resultId: response.resultId }, context());
  assert.equal(described.filename, files[0].name);
  assert.deepEqual(described.files, expected.files);
  assert.deepEqual(described.badRowSamples, expected.badRowSamples);
  assert.equal(described.pagePath, `/r/${response.resultId}`);
  const stem = files[0].name.replace(/\.gz$/, "").replace(/\.csv$/, "");
  assert.equal(
    described.downloadFilename,
    files.length === 1 ? `${stem}.result.csv` : `${stem}-and-${files.length - 1}-more.result.csv`,
  );
}

Deno.test("createSalesService uploadCsvStream reads each file on its own and adds them up", async (t) => {
  await using s = await setUp();
  for (const [name, files] of [["two", TWO_FILES], ["three", THREE_FILES]] as const) {
    for (const size of [1, 7, 4096]) {
      await t.step(`${name} files in chunks of ${size}`, async () => {
        const response = await s.service.uploadCsvStream(
          (async function* () {
            yield* streamChunks(files, size);
          })(),
          context(),
        );
        await assertMultiFileResult(s, response, files);
      });
    }
  }
  await t.step("the quote left open ends with its file, and line numbers restart", async () => {
    const expected = await expectedResult(THREE_FILES);
    assert.deepEqual(
      expected.badRowSamples.map((row) => [row.file, row.line]),
      [["north.csv", 4], ["north.csv", 5], ["south.csv.gz", 3], ["west.csv", 3]],
    );
    assert.deepEqual(expected.files.map((file) => file.rows), [4, 3, 3]);
  });
  assert.equal(s.service.uploadsInProgress, 0);
});

Deno.test("createSalesService chunked upload of several files moves on with file_index", async (t) => {
  await using s = await setUp();
  for (const [name, files] of [["two", TWO_FILES], ["three", THREE_FILES]] as const) {
    await t.step(`${name} files`, async () => {
      const { uploadId } = await s.service.startUpload(
        { filename: "", size: sizeOf(files), filenames: files.map((file) => file.name) },
        context(),
      );
      for (const append of appends(files, 5)) {
        const progress = await s.service.appendUpload({ uploadId, ...append }, context());
        assert.equal(progress.committedOffset, append.offset + append.data.length);
        // A retried append, with its file index, is a repeat; another file index is not.
        await s.service.appendUpload({ uploadId, ...append }, context());
        if (append.fileIndex > 0) {
          await assert.rejects(
            s.service.appendUpload(
              { uploadId, ...append, fileIndex: append.fileIndex - 1 },
              context(),
            ),
            isAppError(Status.FAILED_PRECONDITION, /does not match committed offset/),
          );
        }
      }
      await assertMultiFileResult(s, await s.service.finishUpload({ uploadId }, context()), files);
    });
  }
  await t.step("skipped files and files after the last index are empty", async () => {
    const names = ["empty-1.csv", "b.csv", "empty-2.csv", "c.csv", "empty-3.csv"];
    const { uploadId } = await s.service.startUpload(
      { filename: "ignored.csv", size: 0, filenames: names },
      context(),
    );
    const b = encoder.encode("Toys,2024-01-02,3\n");
    const c = encoder.encode("Toys,2024-01-02,4\nbad\n");
    await s.service.appendUpload({ uploadId, offset: 0, data: b, fileIndex: 1 }, context());
    await s.service.appendUpload(
      { uploadId, offset: b.length, data: c, fileIndex: 3 },
      context(),
    );
    await assert.rejects(
      s.service.appendUpload(
        { uploadId, offset: b.length + c.length, data: b, fileIndex: 1 },
        context(),
      ),
      isAppError(Status.FAILED_PRECONDITION, /file_index 1 goes back from file 3/),
    );
    await assert.rejects(
      s.service.appendUpload(
        { uploadId, offset: b.length + c.length, data: b, fileIndex: 5 },
        context(),
      ),
      isAppError(Status.INVALID_ARGUMENT, /Invalid file_index in AppendUpload: 5, .* 5 files/),
    );
    const response = await s.service.finishUpload({ uploadId }, context());
    assert.deepEqual(response.files.map((file) => [file.name, file.rows, file.badRows]), [
      ["empty-1.csv", 0, 0],
      ["b.csv", 1, 0],
      ["empty-2.csv", 0, 0],
      ["c.csv", 2, 1],
      ["empty-3.csv", 0, 0],
    ]);
    assert.deepEqual(response.badRowSamples.map((row) => [row.file, row.fileIndex, row.line]), [
      ["c.csv", 3, 2],
    ]);
    const described = await s.service.getResult({ resultId: response.resultId }, context());
    assert.equal(described.filename, "empty-1.csv");
    assert.equal(described.downloadFilename, "empty-1-and-4-more.result.csv");
  });
  await t.step("a single-file upload accepts only file_index 0", async () => {
    const { uploadId } = await s.service.startUpload({ filename: "a.csv", size: 0 }, context());
    await assert.rejects(
      s.service.appendUpload(
        { uploadId, offset: 0, data: encoder.encode("x"), fileIndex: 1 },
        context(),
      ),
      isAppError(Status.INVALID_ARGUMENT, /upload .* has 1 file \(index 0\)/),
    );
    await s.service.cancelUpload({ uploadId }, context());
  });
  assert.equal(s.service.uploadsInProgress, 0);
});

Deno.test("createSalesService refuses a corrupt gzip in the second file on every path, storing nothing", async (t) => {
  await using s = await setUp();
  const corrupt = isAppError(Status.INVALID_ARGUMENT, /broken\.csv\.gz/);
  await t.step("stream", async () => {
    await assert.rejects(
      s.service.uploadCsvStream(
        (async function* () {
          yield* streamChunks(CORRUPT_SECOND, 64);
        })(),
        context(),
      ),
      corrupt,
    );
  });
  await t.step("chunked", async () => {
    const { uploadId } = await s.service.startUpload(
      { filename: "", size: 0, filenames: CORRUPT_SECOND.map((file) => file.name) },
      context(),
    );
    // The second file is found corrupt when the third starts, or at the end.
    const calls = async () => {
      for (const append of appends(CORRUPT_SECOND, 64)) {
        await s.service.appendUpload({ uploadId, ...append }, context());
      }
      await s.service.finishUpload({ uploadId }, context());
    };
    await assert.rejects(calls(), corrupt);
  });
  assert.deepEqual(await s.resultFiles(), []);
  assert.equal(s.service.uploadsInProgress, 0);
});

Deno.test("createSalesService counts the whole upload against MAX_UPLOAD_BYTES and MAX_UPLOAD_FILES", async () => {
  await using s = await setUp({ inputOptions: { maxBytes: sizeOf(THREE_FILES) - 1 } });
  await assert.rejects(
    s.service.uploadCsvStream(
      (async function* () {
        yield* streamChunks(THREE_FILES, 16);
      })(),
      context(),
    ),
    isAppError(Status.RESOURCE_EXHAUSTED, /Upload too large/),
  );
  const many = Array.from({ length: MAX_UPLOAD_FILES + 1 }, (_, i) => `f${i}.csv`);
  await assert.rejects(
    s.service.startUpload({ filename: "", size: 0, filenames: many }, context()),
    isAppError(Status.RESOURCE_EXHAUSTED, /Too many files in one upload: 1001, the limit is 1000/),
  );
  await assert.rejects(
    s.service.uploadCsvStream(
      (async function* () {
        for (const filename of many) yield { data: new Uint8Array(0), filename };
      })(),
      context(),
    ),
    isAppError(Status.RESOURCE_EXHAUSTED, /Too many files in one upload/),
  );
  assert.deepEqual(await s.resultFiles(), []);
  assert.equal(s.service.uploadsInProgress, 0);
});

Deno.test("createSalesService signs page_path as the download URL, under its own purpose", async () => {
  await using signed = await startSignedSalesService("sales_service_page_");
  const response = await signed.service.uploadCsvStream(
    (async function* () {
      yield* streamChunks(TWO_FILES, 1024);
    })(),
    context(),
  );
  const page = new URL(response.pagePath, "http://web.test");
  assert.equal(page.pathname, `/r/${response.resultId}`);
  const verifier = signed.downloadUrls;
  assert.equal(verifier.verifyPage(response.resultId, page.searchParams), undefined);
  // A download URL's signature does not open the page, nor the reverse.
  const download = new URL(response.downloadUrl);
  assert.match(verifier.verifyPage(response.resultId, download.searchParams)!.message, /not valid/);
  assert.match(verifier.verify(response.resultId, page.searchParams)!.message, /not valid/);
  signed.clock.now += (SIGNED_URL_TTL_SEC + 1) * 1000;
  assert.match(
    verifier.verifyPage(response.resultId, page.searchParams)!.message,
    /page link expired/,
  );
  const renewed = await signed.service.getResult({ resultId: response.resultId }, context());
  const renewedPage = new URL(renewed.pagePath, "http://web.test");
  assert.equal(verifier.verifyPage(response.resultId, renewedPage.searchParams), undefined);
});
