/**
 * The one mapping between the service's plain types (`types.ts`) and the messages of
 * `proto/sales.proto`, shared by every transport. The transports differ only in how a uint64
 * travels: `@grpc/proto-loader` (grpc-js, `longs: String`) uses decimal strings, protobuf-es
 * (connect, gRPC-Web) uses `bigint`; so every function here is generic over that representation
 * and each adapter passes its own ({@linkcode uint64AsString}, {@linkcode uint64AsBigInt}). The
 * adapters' generated message types check the shapes built here.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { toAppendUploadResponseMessage, uint64AsString } from "./wire.ts";
 *
 * const message = toAppendUploadResponseMessage(
 *   { committedOffset: 4096, rows: 12, badRows: 1 },
 *   uint64AsString,
 * );
 * deepEqual(message, { committedOffset: "4096", rows: "12", badRows: "1" });
 * ```
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";
import type {
  BadRow,
  CallContext,
  FileSummary,
  ResultDescription,
  SalesService,
  UploadChunk,
  UploadResponse,
} from "./types.ts";

/** A uint64 as one of the transports carries it. */
export type Uint64 = string | bigint;

/** How a transport writes a uint64: from the service's `number` to its wire representation. */
export type Uint64Format<U extends Uint64> = (value: number) => U;

/** uint64 as decimal strings, as `@grpc/proto-loader` reads and writes them (`longs: String`). */
export const uint64AsString: Uint64Format<string> = (value) => String(value);

/** uint64 as `bigint`, as protobuf-es reads and writes them. */
export const uint64AsBigInt: Uint64Format<bigint> = (value) => BigInt(value);

/** The largest uint64 request field this server reads: offsets and sizes are JavaScript numbers. */
const MAX_UINT64_FIELD = Number.MAX_SAFE_INTEGER;

/**
 * A uint64 request field (an offset or a size) as a number, or `INVALID_ARGUMENT` naming the field
 * and the method when it is past 2^53 - 1, where numbers stop being exact.
 */
export function toSafeNumber(value: Uint64 | number, field: string, method: string): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 0) {
    throw new AppError(
      Status.INVALID_ARGUMENT,
      `Invalid ${field} in ${method}: ${value} is past the limit of 2^53 - 1 (${MAX_UINT64_FIELD})`,
    );
  }
  return number;
}

/**
 * The bytes of a message field as a plain `Uint8Array`, without copying. proto-loader hands out
 * Deno's `Buffer`, whose methods such as `lastIndexOf` and `subarray` are slow JavaScript versions;
 * the service and the aggregator should get the engine's own.
 */
export function plainBytes(data: Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A `BadRow` message. */
export function toBadRowMessage<U extends Uint64>(row: BadRow, uint64: Uint64Format<U>) {
  return {
    line: uint64(row.line),
    reason: row.reason,
    raw: row.raw,
    file: row.file,
    fileIndex: row.fileIndex,
  };
}

/** A `FileSummary` message. */
export function toFileSummaryMessage<U extends Uint64>(file: FileSummary, uint64: Uint64Format<U>) {
  return {
    name: file.name,
    rows: uint64(file.rows),
    badRows: uint64(file.badRows),
    departments: uint64(file.departments),
  };
}

/** An `UploadResponse` message. */
export function toUploadResponseMessage<U extends Uint64>(
  response: UploadResponse,
  uint64: Uint64Format<U>,
) {
  return {
    resultId: response.resultId,
    downloadUrl: response.downloadUrl,
    rows: uint64(response.rows),
    badRows: uint64(response.badRows),
    departments: uint64(response.departments),
    elapsedSec: response.elapsedSec,
    badRowSamples: response.badRowSamples.map((row) => toBadRowMessage(row, uint64)),
    files: response.files.map((file) => toFileSummaryMessage(file, uint64)),
    pagePath: response.pagePath,
  };
}

/** An `AppendUploadResponse` message. */
export function toAppendUploadResponseMessage<U extends Uint64>(
  progress: { committedOffset: number; rows: number; badRows: number },
  uint64: Uint64Format<U>,
) {
  return {
    committedOffset: uint64(progress.committedOffset),
    rows: uint64(progress.rows),
    badRows: uint64(progress.badRows),
  };
}

/** A `GetResultResponse` message; `createdAt` becomes RFC 3339 in UTC. */
export function toGetResultResponseMessage<U extends Uint64>(
  result: ResultDescription,
  uint64: Uint64Format<U>,
) {
  return {
    resultId: result.resultId,
    downloadUrl: result.downloadUrl,
    filename: result.filename,
    downloadFilename: result.downloadFilename,
    rows: uint64(result.rows),
    badRows: uint64(result.badRows),
    departments: uint64(result.departments),
    badRowSamples: result.badRowSamples.map((row) => toBadRowMessage(row, uint64)),
    createdAt: result.createdAt.toISOString(),
    sizeBytes: uint64(result.sizeBytes),
    hasMetadata: result.hasMetadata,
    files: result.files.map((file) => toFileSummaryMessage(file, uint64)),
    pagePath: result.pagePath,
  };
}

/** An `UploadResponse` message with uint64 fields in either representation. */
export type UploadResponseMessage = ReturnType<typeof toUploadResponseMessage<Uint64>>;
/** An `AppendUploadResponse` message with uint64 fields in either representation. */
export type AppendUploadResponseMessage = ReturnType<typeof toAppendUploadResponseMessage<Uint64>>;
/** A `GetResultResponse` message with uint64 fields in either representation. */
export type GetResultResponseMessage = ReturnType<typeof toGetResultResponseMessage<Uint64>>;

/** The service's `UploadResponse` from a message (the way back, for clients). */
export function fromUploadResponseMessage(message: UploadResponseMessage): UploadResponse {
  return {
    resultId: message.resultId,
    downloadUrl: message.downloadUrl,
    rows: Number(message.rows),
    badRows: Number(message.badRows),
    departments: Number(message.departments),
    elapsedSec: message.elapsedSec,
    badRowSamples: message.badRowSamples.map(fromBadRowMessage),
    files: message.files.map(fromFileSummaryMessage),
    pagePath: message.pagePath,
  };
}

/** The service's append progress from an `AppendUploadResponse` message. */
export function fromAppendUploadResponseMessage(
  message: AppendUploadResponseMessage,
): { committedOffset: number; rows: number; badRows: number } {
  return {
    committedOffset: Number(message.committedOffset),
    rows: Number(message.rows),
    badRows: Number(message.badRows),
  };
}

/** The service's `ResultDescription` from a `GetResultResponse` message. */
export function fromGetResultResponseMessage(message: GetResultResponseMessage): ResultDescription {
  return {
    resultId: message.resultId,
    downloadUrl: message.downloadUrl,
    filename: message.filename,
    downloadFilename: message.downloadFilename,
    rows: Number(message.rows),
    badRows: Number(message.badRows),
    departments: Number(message.departments),
    badRowSamples: message.badRowSamples.map(fromBadRowMessage),
    createdAt: new Date(message.createdAt),
    sizeBytes: Number(message.sizeBytes),
    hasMetadata: message.hasMetadata,
    files: message.files.map(fromFileSummaryMessage),
    pagePath: message.pagePath,
  };
}

function fromBadRowMessage(
  message: { line: Uint64; reason: string; raw: string; file: string; fileIndex: number },
): BadRow {
  return {
    line: Number(message.line),
    reason: message.reason,
    raw: message.raw,
    file: message.file,
    fileIndex: message.fileIndex,
  };
}

function fromFileSummaryMessage(
  message: { name: string; rows: Uint64; badRows: Uint64; departments: Uint64 },
): FileSummary {
  return {
    name: message.name,
    rows: Number(message.rows),
    badRows: Number(message.badRows),
    departments: Number(message.departments),
  };
}

/** An `UploadRequest` or `UploadChunk` message, as both transports decode it. */
export interface UploadChunkMessage {
  data: Uint8Array;
  filename: string;
}

/**
 * Every SalesService method from request message to response message, keyed by its name in
 * `sales.proto`: what each transport serves, once it has turned its call into a
 * {@linkcode CallContext}. Errors are thrown as they come; each transport maps them in one place.
 */
export function createWireMethods<U extends Uint64>(
  service: SalesService,
  uint64: Uint64Format<U>,
) {
  return {
    UploadCSV: async (request: UploadChunkMessage, ctx: CallContext) =>
      toUploadResponseMessage(await service.uploadCsv(toUploadChunk(request), ctx), uint64),
    UploadCSVStream: async (requests: AsyncIterable<UploadChunkMessage>, ctx: CallContext) =>
      toUploadResponseMessage(await service.uploadCsvStream(toUploadChunks(requests), ctx), uint64),
    DownloadResult: (request: { resultId: string }, ctx: CallContext) =>
      service.downloadResult({ resultId: request.resultId }, ctx),
    GetResult: async (request: { resultId: string }, ctx: CallContext) =>
      toGetResultResponseMessage(
        await service.getResult({ resultId: request.resultId }, ctx),
        uint64,
      ),
    StartUpload: (
      request: { filename: string; size: Uint64; filenames: string[] },
      ctx: CallContext,
    ) =>
      service.startUpload(
        {
          filename: request.filename,
          size: toSafeNumber(request.size, "size", "StartUpload"),
          filenames: request.filenames,
        },
        ctx,
      ),
    AppendUpload: async (
      request: { uploadId: string; offset: Uint64; data: Uint8Array; fileIndex: number },
      ctx: CallContext,
    ) =>
      toAppendUploadResponseMessage(
        await service.appendUpload({
          uploadId: request.uploadId,
          offset: toSafeNumber(request.offset, "offset", "AppendUpload"),
          data: plainBytes(request.data),
          fileIndex: request.fileIndex,
        }, ctx),
        uint64,
      ),
    FinishUpload: async (request: { uploadId: string }, ctx: CallContext) =>
      toUploadResponseMessage(
        await service.finishUpload({ uploadId: request.uploadId }, ctx),
        uint64,
      ),
    CancelUpload: (request: { uploadId: string }, ctx: CallContext) =>
      service.cancelUpload({ uploadId: request.uploadId }, ctx),
  };
}

function toUploadChunk(message: UploadChunkMessage): UploadChunk {
  return { data: plainBytes(message.data), filename: message.filename };
}

async function* toUploadChunks(
  messages: AsyncIterable<UploadChunkMessage>,
): AsyncIterable<UploadChunk> {
  for await (const message of messages) yield toUploadChunk(message);
}
