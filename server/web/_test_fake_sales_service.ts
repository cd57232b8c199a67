/**
 * A small in-memory SalesService for handler tests: it counts lines instead of aggregating, and
 * follows the real service's rules for offsets, unknown ids and errors closely enough to exercise
 * the transport.
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";
import type { CallContext, SalesService, UploadResponse } from "../service/types.ts";

/** What the fake saw, for assertions. */
export interface FakeSalesServiceLog {
  calls: string[];
  headers: Record<string, string | undefined>[];
  cancelled: string[];
  /** Bytes each upload committed, in order. */
  committed: Map<string, Uint8Array<ArrayBuffer>[]>;
}

/** A result id the fake knows; its CSV is {@linkcode FAKE_RESULT_CSV}. */
export const FAKE_RESULT_ID = "0123456789abcdef0123456789abcdef";
/** The bytes `downloadResult` returns for {@linkcode FAKE_RESULT_ID}. */
export const FAKE_RESULT_CSV = "Department Name,Total Number of Sales\nGarden,12\nToys,7\n";

function countLines(bytes: Uint8Array): number {
  let lines = 0;
  for (const byte of bytes) if (byte === 10) lines++;
  return lines;
}

function response(rows: number, badRows = 0): UploadResponse {
  return {
    resultId: FAKE_RESULT_ID,
    downloadUrl: `http://localhost:8080/results/${FAKE_RESULT_ID}.csv`,
    rows,
    badRows,
    departments: 2,
    elapsedSec: 0.25,
    badRowSamples: badRows > 0
      ? [{ line: 3, reason: "invalid date", raw: "Toys,2024-13-01,3", file: "", fileIndex: 0 }]
      : [],
    files: [{ name: "", rows, badRows, departments: 2 }],
    pagePath: `/r/${FAKE_RESULT_ID}`,
  };
}

/** Creates the fake; `chunkSize` is what StartUpload tells clients to use. */
export function createFakeSalesService(
  options: { chunkSize?: number } = {},
): { service: SalesService; log: FakeSalesServiceLog } {
  const log: FakeSalesServiceLog = { calls: [], headers: [], cancelled: [], committed: new Map() };
  const uploads = new Map<string, { committed: number; rows: number; finished?: UploadResponse }>();
  let nextUpload = 1;
  const record = (name: string, ctx: CallContext) => {
    log.calls.push(name);
    log.headers.push({
      authorization: ctx.header("authorization"),
      "x-test": ctx.header("x-test"),
    });
  };
  const upload = (uploadId: string) => {
    const state = uploads.get(uploadId);
    if (state === undefined) throw new AppError(Status.NOT_FOUND, `Upload ${uploadId} not found`);
    return state;
  };
  const service: SalesService = {
    uploadCsv(request, ctx) {
      record("uploadCsv", ctx);
      if (request.filename === "crash.csv") throw new Error("secret internal detail");
      return Promise.resolve(response(countLines(request.data)));
    },
    async uploadCsvStream(chunks, ctx) {
      record("uploadCsvStream", ctx);
      let rows = 0;
      for await (const chunk of chunks) rows += countLines(chunk.data);
      return response(rows);
    },
    downloadResult(request, ctx) {
      record("downloadResult", ctx);
      if (!/^[0-9a-f]{32}$/.test(request.resultId)) {
        throw new AppError(Status.INVALID_ARGUMENT, `Malformed result id: ${request.resultId}`);
      }
      if (request.resultId !== FAKE_RESULT_ID) {
        throw new AppError(Status.NOT_FOUND, `Result ${request.resultId} not found`);
      }
      return Promise.resolve({ data: new TextEncoder().encode(FAKE_RESULT_CSV) });
    },
    getResult(request, ctx) {
      record("getResult", ctx);
      if (request.resultId !== FAKE_RESULT_ID) {
        throw new AppError(Status.NOT_FOUND, `Result ${request.resultId} not found`);
      }
      const { elapsedSec: _, ...counts } = response(3);
      return Promise.resolve({
        ...counts,
        filename: "sales.csv",
        downloadFilename: "sales.result.csv",
        createdAt: new Date(0),
        sizeBytes: new TextEncoder().encode(FAKE_RESULT_CSV).length,
        hasMetadata: true,
      });
    },
    startUpload(_request, ctx) {
      record("startUpload", ctx);
      const uploadId = `upload-${nextUpload++}`;
      uploads.set(uploadId, { committed: 0, rows: 0 });
      return Promise.resolve({ uploadId, chunkSize: options.chunkSize ?? 4 * 1024 * 1024 });
    },
    appendUpload(request, ctx) {
      record("appendUpload", ctx);
      const state = upload(request.uploadId);
      const end = request.offset + request.data.length;
      if (request.offset === state.committed) {
        state.committed = end;
        state.rows += countLines(request.data);
        log.committed.set(request.uploadId, [
          ...log.committed.get(request.uploadId) ?? [],
          request.data.slice(),
        ]);
      } else if (!(request.offset < state.committed && end <= state.committed)) {
        throw new AppError(
          Status.FAILED_PRECONDITION,
          `Cannot append to upload ${request.uploadId}: offset ${request.offset} does not match committed offset ${state.committed}`,
        );
      }
      return Promise.resolve({ committedOffset: state.committed, rows: state.rows, badRows: 0 });
    },
    finishUpload(request, ctx) {
      record("finishUpload", ctx);
      const state = upload(request.uploadId);
      state.finished ??= response(state.rows);
      return Promise.resolve(state.finished);
    },
    cancelUpload(request, ctx) {
      record("cancelUpload", ctx);
      upload(request.uploadId);
      uploads.delete(request.uploadId);
      log.cancelled.push(request.uploadId);
      return Promise.resolve({});
    },
  };
  return { service, log };
}
