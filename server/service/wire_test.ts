import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import type { ResultDescription, UploadResponse } from "./types.ts";
import {
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
  badRowSamples: [{ line: 3, reason: "invalid date", raw: "Toys,2024-13-01,3" }],
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
};

Deno.test("toUploadResponseMessage writes uint64 fields in each transport's representation", () => {
  const strings = toUploadResponseMessage(UPLOAD, uint64AsString);
  const bigints = toUploadResponseMessage(UPLOAD, uint64AsBigInt);
  assert.equal(strings.rows, "1099511627779");
  assert.equal(bigints.rows, 1099511627779n);
  assert.deepEqual(strings.badRowSamples, [{ ...UPLOAD.badRowSamples[0], line: "3" }]);
  assert.deepEqual(bigints.badRowSamples, [{ ...UPLOAD.badRowSamples[0], line: 3n }]);
  // Both representations come back to the same plain response.
  assert.deepEqual(fromUploadResponseMessage(strings), UPLOAD);
  assert.deepEqual(fromUploadResponseMessage(bigints), UPLOAD);
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
