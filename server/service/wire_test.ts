import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import type { ResultDescription, SalesService, UploadResponse } from "./types.ts";
import {
  createWireMethods,
  fromGetResultResponseMessage,
  fromUploadResponseMessage,
  plainBytes,
  toGetResultResponseMessage,
  toSafeNumber,
  toUploadResponseMessage,
  type Uint64,
  uint64AsBigInt,
  uint64AsString,
  type Uint64Format,
} from "./wire.ts";

const UPLOAD: UploadResponse = {
  resultId: "r1",
  downloadUrl: "http://localhost/results/r1.csv",
  rows: 2 ** 40 + 3,
  badRows: 1,
  departments: 12,
  elapsedSec: 0.25,
  badRowSamples: [
    { line: 3, reason: "invalid date", raw: "Toys,2024-13-01,3", file: "a.csv", fileIndex: 0 },
    { line: 1, reason: "expected 3 fields, found 1", raw: "x", file: "a.csv", fileIndex: 2 },
  ],
  files: [
    { name: "a.csv", rows: 2 ** 40, badRows: 1, departments: 12 },
    { name: "", rows: 0, badRows: 0, departments: 0 },
    { name: "a.csv", rows: 3, badRows: 0, departments: 1 },
  ],
  pagePath: "/r/r1?exp=1767225660&sig=" + "A".repeat(43),
};

const RESULT: ResultDescription = {
  resultId: UPLOAD.resultId,
  downloadUrl: UPLOAD.downloadUrl,
  rows: UPLOAD.rows,
  badRows: UPLOAD.badRows,
  departments: UPLOAD.departments,
  badRowSamples: UPLOAD.badRowSamples,
  filename: "sales.csv",
  downloadFilename: "sales.result.csv",
  createdAt: new Date("2026-01-02T03:04:05.678Z"),
  sizeBytes: Number.MAX_SAFE_INTEGER,
  hasMetadata: true,
  files: UPLOAD.files,
  pagePath: UPLOAD.pagePath,
};

Deno.test("toUploadResponseMessage writes uint64 fields in each transport's representation", () => {
  const strings = toUploadResponseMessage(UPLOAD, uint64AsString);
  const bigints = toUploadResponseMessage(UPLOAD, uint64AsBigInt);
  assert.equal(strings.rows, "1099511627779");
  assert.equal(bigints.rows, 1099511627779n);
  assert.deepEqual(strings.badRowSamples[0], { ...UPLOAD.badRowSamples[0], line: "3" });
  assert.deepEqual(bigints.badRowSamples[0], { ...UPLOAD.badRowSamples[0], line: 3n });
  // Both representations come back to the same plain response.
  assert.deepEqual(fromUploadResponseMessage(strings), UPLOAD);
  assert.deepEqual(fromUploadResponseMessage(bigints), UPLOAD);
});

Deno.test("toUploadResponseMessage carries each file's counts, each bad row's file and the page path", () => {
  for (const uint64 of [uint64AsString, uint64AsBigInt] as Uint64Format<Uint64>[]) {
    const message = toUploadResponseMessage(UPLOAD, uint64);
    assert.deepEqual(
      message.files.map((file) => [file.name, String(file.rows), String(file.badRows)]),
      [["a.csv", "1099511627776", "1"], ["", "0", "0"], ["a.csv", "3", "0"]],
    );
    assert.deepEqual(
      message.badRowSamples.map((row) => [row.file, row.fileIndex, String(row.line)]),
      [["a.csv", 0, "3"], ["a.csv", 2, "1"]],
    );
    assert.equal(message.pagePath, UPLOAD.pagePath);
    const result = toGetResultResponseMessage(RESULT, uint64);
    assert.deepEqual(result.files, message.files);
    assert.equal(result.pagePath, UPLOAD.pagePath);
  }
});

Deno.test("createWireMethods passes StartUpload's filenames and AppendUpload's file_index to the service", async () => {
  const seen: unknown[] = [];
  const service = {
    startUpload: (request: unknown) => {
      seen.push(request);
      return Promise.resolve({ uploadId: "u", chunkSize: 4 });
    },
    appendUpload: (request: { data: Uint8Array }) => {
      seen.push({ ...request, data: [...request.data] });
      return Promise.resolve({ committedOffset: 9, rows: 1, badRows: 0 });
    },
  } as unknown as SalesService;
  const methods = createWireMethods(service, uint64AsBigInt);
  const ctx = { signal: new AbortController().signal, header: () => undefined };
  await methods.StartUpload({ filename: "", size: 9n, filenames: ["a.csv", "b.csv.gz"] }, ctx);
  await methods.AppendUpload(
    { uploadId: "u", offset: 6n, data: new Uint8Array([1, 2, 3]), fileIndex: 1 },
    ctx,
  );
  assert.deepEqual(seen, [
    { filename: "", size: 9, filenames: ["a.csv", "b.csv.gz"] },
    { uploadId: "u", offset: 6, data: [1, 2, 3], fileIndex: 1 },
  ]);
});

Deno.test("toGetResultResponseMessage sends createdAt as RFC 3339 and round-trips", () => {
  for (const uint64 of [uint64AsString, uint64AsBigInt] as Uint64Format<Uint64>[]) {
    const message = toGetResultResponseMessage(RESULT, uint64);
    assert.equal(message.createdAt, "2026-01-02T03:04:05.678Z");
    assert.equal(String(message.sizeBytes), "9007199254740991");
    assert.deepEqual(fromGetResultResponseMessage(message), RESULT);
  }
});

Deno.test("toSafeNumber accepts 0 to 2^53 - 1 and refuses larger values with INVALID_ARGUMENT", async (t) => {
  for (const value of ["0", 0n, "9007199254740991", 9007199254740991n]) {
    await t.step(`${typeof value} ${value}`, () => {
      assert.equal(toSafeNumber(value, "offset", "AppendUpload"), Number(value));
    });
  }
  for (const value of ["9007199254740992", 9007199254740992n, "18446744073709551615"]) {
    await t.step(`${typeof value} ${value} is refused`, () => {
      assert.throws(
        () => toSafeNumber(value, "offset", "AppendUpload"),
        (error: unknown) =>
          error instanceof AppError && error.code === Status.INVALID_ARGUMENT &&
          error.message ===
            `Invalid offset in AppendUpload: ${value} is past the limit of 2^53 - 1 (9007199254740991)`,
      );
    });
  }
});

Deno.test("plainBytes views the same bytes without copying", () => {
  const buffer = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
  const plain = plainBytes(buffer);
  assert.deepEqual([...plain], [1, 2, 3]);
  assert.equal(plain.buffer, buffer.buffer);
  assert.equal(plain.byteOffset, 1);
});
