/**
 * The one implementation of {@linkcode SalesService}: plain async functions that every transport
 * (grpc-js in `server/grpc/`, gRPC-Web in `server/web/`) adapts. Every upload path streams its
 * bytes through an aggregator; only the result CSV is written, and only then is its id returned.
 *
 * @example
 * ```ts
 * import { ResultStore } from "../storage/result_store.ts";
 * import { createSalesService } from "./sales_service.ts";
 * const dir = await Deno.makeTempDir();
 * const service = createSalesService({
 *   store: await ResultStore.open(dir),
 *   publicResultsUrl: "http://localhost:8080",
 * });
 * const ctx = { signal: new AbortController().signal, header: () => undefined };
 * const csv = new TextEncoder().encode("Department Name,Date,Number of Sales\nToys,2024-01-02,3\n");
 * const response = await service.uploadCsv({ data: csv, filename: "sales.csv" }, ctx);
 * if (response.rows !== 1) throw new Error("expected one row");
 * service.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import type { SalesInputOptions } from "../aggregate/sales_input.ts";
import { AppError, Status } from "../errors.ts";
import type { ResultStore } from "../storage/result_store.ts";
import { ChunkedUploads } from "./chunked_uploads.ts";
import type { ClientAddresses } from "./client_address.ts";
import { DownloadUrls } from "./download_url.ts";
import type { CallContext, SalesService, UploadChunk, UploadResponse } from "./types.ts";
import { UploadRun } from "./upload_run.ts";

/** Options of {@linkcode createSalesService}. */
export interface SalesServiceOptions {
  /** Where results are written. */
  store: ResultStore;
  /** Base of every `downloadUrl`, without a trailing slash. */
  publicResultsUrl: string;
  /** Builds each `downloadUrl`, signed when configured. @default {unsigned, under `publicResultsUrl`} */
  downloadUrls?: DownloadUrls;
  /** Seconds without a call after which a chunked upload expires. @default {900} */
  uploadIdleTimeoutSec?: number;
  /** Longest a chunked upload may stay open, however active, in seconds. @default {86400} */
  uploadMaxLifetimeSec?: number;
  /** Uploads in progress at once for one client. @default {Infinity} */
  maxUploadsPerClient?: number;
  /** Tells the client of a call from its peer and trusted `x-forwarded-for`. @default {no trusted proxies} */
  clientAddresses?: ClientAddresses;
  /** Chunk size suggested to chunked-upload clients. @default {4194304} */
  chunkSize?: number;
  /**
   * Limits and options for every upload's input and aggregator (`maxBytes`, `maxDepartments`, ...).
   * @default {{}}
   */
  inputOptions?: SalesInputOptions;
  /**
   * Uploads that may be in progress at once; one more is refused with RESOURCE_EXHAUSTED and a
   * retry hint.
   * @default {Infinity}
   */
  maxConcurrentUploads?: number;
  /** Millisecond clock for chunked-upload expiry (tests). @default {performance.now} */
  now?: () => number;
  /** Whether chunked uploads expire on a timer; tests turn it off and call `expireIdleUploads`. @default {true} */
  expiryTimer?: boolean;
}

/** The service plus what its owner needs: counters for tests and a way to stop it. */
export interface SalesServiceHandle extends SalesService {
  /** Uploads whose aggregator is alive: streaming calls in flight and unfinished chunked uploads. */
  readonly uploadsInProgress: number;
  /** Expires idle chunked uploads now; returns how many. */
  expireIdleUploads(): number;
  /** Drops all chunked uploads and stops the expiry timer. */
  close(): void;
}

/** Builds the sales service over a result store. */
export function createSalesService(options: SalesServiceOptions): SalesServiceHandle {
  const { store, publicResultsUrl } = options;
  const downloadUrls = options.downloadUrls ?? new DownloadUrls({ publicResultsUrl });
  /** Every live aggregator, so leaks show in tests and concurrency can be bounded in one place. */
  const runs = new Set<UploadRun>();

  const maxConcurrentUploads = options.maxConcurrentUploads ?? Infinity;
  const maxBytes = options.inputOptions?.maxBytes ?? Infinity;

  const openRun = (filename: string): UploadRun => {
    if (runs.size >= maxConcurrentUploads) {
      throw new AppError(
        Status.RESOURCE_EXHAUSTED,
        `Too many uploads in progress (the limit is ${maxConcurrentUploads}): retry in a few seconds`,
        { retryAfterMs: RETRY_AFTER_MS },
      );
    }
    const run = new UploadRun(filename, options.inputOptions);
    runs.add(run);
    return run;
  };
  // A run whose result could not be stored stays counted: a chunked upload keeps it for a retried
  // FinishUpload until it expires. One-shot uploads drop theirs when the call ends.
  const finishRun = async (run: UploadRun): Promise<UploadResponse> => {
    const response = await run.finish(store, (resultId) => downloadUrls.urlFor(resultId));
    runs.delete(run);
    return response;
  };

  const chunked = new ChunkedUploads({
    idleTimeoutMs: (options.uploadIdleTimeoutSec ?? 900) * 1000,
    chunkSize: options.chunkSize,
    openRun,
    finishRun,
    discardRun: (run) => runs.delete(run),
    now: options.now,
    sweep: options.expiryTimer,
  });

  /** Stores a one-shot upload's result, unless its caller left, who could never learn the id. */
  const finishOneShot = async (run: UploadRun, ctx: CallContext): Promise<UploadResponse> => {
    throwIfCancelled(ctx.signal);
    const response = await finishRun(run);
    if (ctx.signal.aborted) {
      await store.delete(response.resultId);
      throwIfCancelled(ctx.signal);
    }
    return response;
  };

  return {
    get uploadsInProgress() {
      return runs.size;
    },

    async uploadCsv(request: UploadChunk, ctx: CallContext): Promise<UploadResponse> {
      const run = openRun(request.filename);
      try {
        run.push(request.data);
        return await finishOneShot(run, ctx);
      } finally {
        runs.delete(run);
      }
    },

    async uploadCsvStream(
      chunks: AsyncIterable<UploadChunk>,
      ctx: CallContext,
    ): Promise<UploadResponse> {
      let run: UploadRun | undefined;
      try {
        for await (const chunk of chunks) {
          run ??= openRun(chunk.filename);
          run.push(chunk.data);
        }
        run ??= openRun("");
        return await finishOneShot(run, ctx);
      } catch (error) {
        // A vanished client also breaks the chunk stream; report that, not the stream's error.
        throwIfCancelled(ctx.signal);
        throw error;
      } finally {
        if (run !== undefined) runs.delete(run);
      }
    },

    async downloadResult(request: { resultId: string }): Promise<{ data: Uint8Array }> {
      return { data: await store.read(request.resultId) };
    },

    startUpload(request: { filename: string; size: number }) {
      return Promise.try(() => {
        if (request.size > maxBytes) {
          throw new AppError(
            Status.RESOURCE_EXHAUSTED,
            `Upload too large: ${request.size} bytes declared, the limit is ${maxBytes} bytes`,
          );
        }
        return chunked.start(request.filename, request.size);
      });
    },

    appendUpload(request: { uploadId: string; offset: number; data: Uint8Array }) {
      return Promise.try(() => chunked.append(request.uploadId, request.offset, request.data));
    },

    finishUpload(request: { uploadId: string }): Promise<UploadResponse> {
      return Promise.try(() => chunked.finish(request.uploadId));
    },

    cancelUpload(request: { uploadId: string }): Promise<Record<never, never>> {
      return Promise.try(() => {
        chunked.cancel(request.uploadId);
        return {};
      });
    },

    expireIdleUploads(): number {
      return chunked.expireIdle();
    },

    close(): void {
      chunked.close();
      runs.clear();
    },
  };
}

/** How long a client refused for concurrency is asked to wait before retrying. */
const RETRY_AFTER_MS = 2000;

function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new AppError(Status.CANCELLED, "The client cancelled the upload");
}
