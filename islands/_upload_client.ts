/**
 * The browser side of the resumable upload: a gRPC-Web client for SalesService whose AppendUpload
 * request body is a `Blob` (frame header + `file.slice()`), and the upload loop with progress,
 * cancel and retry. No Preact here, so it runs (and is tested) anywhere `fetch` exists.
 *
 * @module
 */

import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { SalesService } from "../server/gen/sales_pb.ts";
import { formatBytes } from "./_format.ts";
import type { BadRow, UploadResponse } from "../server/service/types.ts";

/** A gRPC-Web client for `sales.v1.SalesService`. */
export type SalesClient = Client<typeof SalesService>;

/** Options for {@linkcode createSalesClient}. */
export interface SalesClientOptions {
  /** The fetch used underneath; tests pass an in-process handler. @default {globalThis.fetch} */
  fetch?: typeof globalThis.fetch;
  /** Extra headers on every call (room for `authorization` when the server requires a token). */
  headers?: () => Record<string, string>;
}

/** Marks an AppendUpload whose `data` travels as a Blob; stripped before the request leaves. */
const BLOB_BODY_HEADER = "x-sales-blob-body";
const pendingBlobBodies = new Map<string, Blob>();
let nextBlobBodyKey = 0;

/** Creates the client for the endpoint at `baseUrl` (an origin, optionally with a path). */
export function createSalesClient(baseUrl: string, options: SalesClientOptions = {}): SalesClient {
  const baseFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const transport = createGrpcWebTransport({
    baseUrl,
    fetch: (input, init) => baseFetch(input, withBlobBody(init)),
    interceptors: options.headers === undefined ? [] : [
      (next) => (request) => {
        for (const [name, value] of Object.entries(options.headers!())) {
          request.header.set(name, value);
        }
        return next(request);
      },
    ],
  });
  return createClient(SalesService, transport);
}

/**
 * Chromium uploads a `Uint8Array` fetch body at 20-36 MB/s but a `Blob` at 110-175 MB/s, so the
 * chunk never enters JavaScript memory: connect serializes AppendUpload without `data`, and this
 * appends field 3 (tag, length) and the file slice as a Blob, fixing the frame's length prefix.
 * Protobuf allows fields in any order, so the server parses it like any other request.
 */
function withBlobBody(init: RequestInit | undefined): RequestInit | undefined {
  const headers = new Headers(init?.headers);
  const key = headers.get(BLOB_BODY_HEADER);
  if (key === null) return init;
  const blob = pendingBlobBodies.get(key);
  if (blob === undefined || !(init?.body instanceof Uint8Array)) {
    throw new Error("AppendUpload body is missing");
  }
  headers.delete(BLOB_BODY_HEADER);
  const message = init.body.subarray(5);
  const field = [0x1a, ...varint(blob.size)];
  const length = message.length + field.length + blob.size;
  const prefix = new Uint8Array(5 + message.length + field.length);
  new DataView(prefix.buffer).setUint32(1, length);
  prefix.set(message, 5);
  prefix.set(field, 5 + message.length);
  return { ...init, headers, body: new Blob([prefix, blob]) };
}

function varint(value: number): number[] {
  const bytes = [];
  while (value > 127) {
    bytes.push((value % 128) | 128);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}

/** AppendUpload with `data` taken from `chunk` (a Blob, typically `file.slice(...)`). */
export async function appendBlob(
  client: SalesClient,
  request: { uploadId: string; offset: number; chunk: Blob },
  signal?: AbortSignal,
): Promise<{ committedOffset: number; rows: number; badRows: number }> {
  const key = String(nextBlobBodyKey++);
  pendingBlobBodies.set(key, request.chunk);
  try {
    const response = await client.appendUpload(
      { uploadId: request.uploadId, offset: BigInt(request.offset) },
      { headers: { [BLOB_BODY_HEADER]: key }, signal },
    );
    return {
      committedOffset: Number(response.committedOffset),
      rows: Number(response.rows),
      badRows: Number(response.badRows),
    };
  } finally {
    pendingBlobBodies.delete(key);
  }
}

/** One bad row as the page shows it: the service's own shape. */
export type BadRowView = BadRow;

/** A finished upload (the service's response, counts as numbers) and the result CSV. */
export interface UploadSummary extends UploadResponse {
  bytes: number;
  /** Wall-clock seconds in the browser, from StartUpload to the result. */
  totalSec: number;
  resultCsv: Uint8Array;
}

/** Progress of a running upload. */
export interface UploadProgress {
  phase: "uploading" | "retrying" | "finishing";
  sentBytes: number;
  totalBytes: number;
  rows: number;
  badRows: number;
  /** Recent speed in bytes per second, when known. */
  bytesPerSec?: number;
  /** Set while waiting before a retry. */
  retry?: { attempt: number; attempts: number; delayMs: number; reason: string };
}

/** Options for {@linkcode uploadFile}. */
export interface UploadFileOptions {
  /** Aborting cancels the upload (and tells the server with CancelUpload). */
  signal?: AbortSignal;
  onProgress?: (progress: UploadProgress) => void;
  /** Tries per chunk before giving up, the first included. @default {6} */
  attempts?: number;
  /** Wait before the first retry; doubles each time. @default {500} */
  retryDelayMs?: number;
  /** Largest chunk, whatever the server suggests. @default {8_388_608} */
  maxChunkBytes?: number;
}

/** Codes worth retrying at the same offset: the chunk or its reply may simply have been lost. */
const RETRYABLE = new Set([Code.Unavailable, Code.Unknown, Code.DeadlineExceeded, Code.Aborted]);

/** Thrown when an upload gives up; `message` is written for people. */
export class UploadError extends Error {
  override name = "UploadError";
  constructor(message: string, readonly code: Code, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Uploads `file` with StartUpload/AppendUpload/FinishUpload, then reads the result CSV. */
export async function uploadFile(
  client: SalesClient,
  file: Blob & { name?: string },
  options: UploadFileOptions = {},
): Promise<UploadSummary> {
  const { signal, onProgress = () => {} } = options;
  const attempts = options.attempts ?? 6;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const startedAt = performance.now();
  const speed = new SpeedMeter();
  let uploadId: string | undefined;
  let progress: UploadProgress = {
    phase: "uploading",
    sentBytes: 0,
    totalBytes: file.size,
    rows: 0,
    badRows: 0,
  };
  const report = (update: Partial<UploadProgress>) => {
    progress = { ...progress, retry: undefined, ...update };
    onProgress(progress);
  };

  /** Runs `call`, retrying retryable failures with exponential backoff. */
  async function withRetry<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await call();
      } catch (error) {
        const connectError = ConnectError.from(error);
        if (signal?.aborted || !RETRYABLE.has(connectError.code) || attempt >= attempts) {
          throw error;
        }
        // Jitter keeps many browsers that lost the same server from retrying in lockstep.
        const delayMs = retryDelayMs * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
        const phase = progress.phase;
        report({
          phase: "retrying",
          retry: { attempt: attempt + 1, attempts, delayMs, reason: connectError.rawMessage },
        });
        await sleep(delayMs, signal);
        report({ phase });
      }
    }
  }

  try {
    onProgress(progress);
    const started = await withRetry(() =>
      client.startUpload({ filename: file.name ?? "upload.csv", size: BigInt(file.size) }, {
        signal,
      })
    );
    uploadId = started.uploadId;
    const chunkBytes = Math.min(
      started.chunkSize > 0 ? started.chunkSize : 4 * 1024 * 1024,
      options.maxChunkBytes ?? 8 * 1024 * 1024,
    );
    let offset = 0;
    speed.add(0);
    while (offset < file.size) {
      signal?.throwIfAborted();
      const chunk = file.slice(offset, Math.min(offset + chunkBytes, file.size));
      const sentOffset = offset;
      const appended = await withRetry(() =>
        appendBlob(client, { uploadId: uploadId!, offset: sentOffset, chunk }, signal)
      );
      offset = appended.committedOffset;
      if (offset <= sentOffset) {
        throw new UploadError(
          `The server did not accept the data at ${sentOffset} (committed ${offset})`,
          Code.Internal,
        );
      }
      speed.add(offset);
      report({
        phase: "uploading",
        sentBytes: offset,
        rows: appended.rows,
        badRows: appended.badRows,
        bytesPerSec: speed.bytesPerSec(),
      });
    }
    report({ phase: "finishing" });
    const finished = await withRetry(() =>
      client.finishUpload({ uploadId: uploadId! }, { signal })
    );
    const download = await withRetry(() =>
      client.downloadResult({ resultId: finished.resultId }, { signal })
    );
    return {
      resultId: finished.resultId,
      downloadUrl: finished.downloadUrl,
      rows: Number(finished.rows),
      badRows: Number(finished.badRows),
      departments: Number(finished.departments),
      elapsedSec: finished.elapsedSec,
      badRowSamples: finished.badRowSamples.map((row) => ({
        line: Number(row.line),
        reason: row.reason,
        raw: row.raw,
      })),
      bytes: file.size,
      totalSec: (performance.now() - startedAt) / 1000,
      resultCsv: download.data,
    };
  } catch (error) {
    if (signal?.aborted) {
      // Best effort: free the server's state now rather than at idle expiry.
      if (uploadId !== undefined) client.cancelUpload({ uploadId }).catch(() => {});
      throw new UploadError("Upload cancelled", Code.Canceled, { cause: error });
    }
    throw toUploadError(error, progress);
  }
}

/** Turns a failure into a message a person can act on. */
export function toUploadError(error: unknown, progress?: UploadProgress): UploadError {
  if (error instanceof UploadError) return error;
  const connectError = ConnectError.from(error);
  const where = progress && progress.sentBytes > 0
    ? ` The upload stopped after ${formatBytes(progress.sentBytes)} of ${
      formatBytes(progress.totalBytes)
    }.`
    : "";
  const detail = connectError.rawMessage.replace(/\.$/, "");
  let message: string;
  switch (connectError.code) {
    case Code.Unavailable:
    case Code.Unknown:
    case Code.DeadlineExceeded:
    case Code.Aborted:
      message = `The server could not be reached (${detail}). Check your connection and try again.`;
      break;
    case Code.NotFound:
      message =
        `The server no longer has this upload: it expired after being idle, or the server restarted. Please upload the file again.`;
      break;
    case Code.ResourceExhausted:
      message = `The server refused the upload: ${detail}.`;
      break;
    case Code.InvalidArgument:
      message = `The file could not be processed: ${detail}.`;
      break;
    case Code.Unauthenticated:
      message = `The server requires an access token: ${detail}.`;
      break;
    case Code.Unimplemented:
      message =
        `The server at this address does not offer uploads (${detail}). Check GRPC_WEB_URL.`;
      break;
    default:
      message = `The upload failed: ${detail}.`;
  }
  return new UploadError(message + where, connectError.code, { cause: error });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Speed over the last few seconds, so a stall shows quickly and a burst does not mislead. */
class SpeedMeter {
  #samples: { at: number; bytes: number }[] = [];

  add(bytes: number): void {
    const at = performance.now();
    this.#samples.push({ at, bytes });
    while (this.#samples.length > 2 && at - this.#samples[0].at > 5000) this.#samples.shift();
  }

  bytesPerSec(): number | undefined {
    const first = this.#samples[0];
    const last = this.#samples.at(-1)!;
    const seconds = (last.at - first.at) / 1000;
    return seconds > 0 ? (last.bytes - first.bytes) / seconds : undefined;
  }
}
