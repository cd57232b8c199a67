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
import { resultFileName } from "../storage/result_file_name.ts";
import type { ResultStore } from "../storage/result_store.ts";
import { ChunkedUploads } from "./chunked_uploads.ts";
import { ClientAddresses, FORWARDED_FOR_HEADER } from "./client_address.ts";
import { DownloadUrlSigner } from "./download_url.ts";
import type { SalesMetrics, StorageOperation } from "./metrics.ts";
import { requestIdOf } from "./request_id.ts";
import type {
  AppendUploadRequest,
  CallContext,
  ResultDescription,
  SalesService,
  StartUploadRequest,
  UploadChunk,
  UploadResponse,
} from "./types.ts";
import { type UploadKind, type UploadReport, UploadReports } from "./upload_report.ts";
import { checkFileCount, checkFilename, UploadRun } from "./upload_run.ts";

export { MAX_FILENAME_LENGTH, MAX_UPLOAD_FILES } from "./upload_run.ts";

/** Options of {@linkcode createSalesService}. */
export interface SalesServiceOptions {
  /** Where results are written. */
  store: ResultStore;
  /** Base of every `downloadUrl`, without a trailing slash. */
  publicResultsUrl: string;
  /** Builds each `downloadUrl`, signed when configured. @default {unsigned, under `publicResultsUrl`} */
  downloadUrls?: DownloadUrlSigner;
  /** Seconds without committed bytes after which a chunked upload expires. @default {900} */
  uploadIdleTimeoutSec?: number;
  /** Longest a chunked upload may stay open, however active, in seconds. @default {86400} */
  uploadMaxLifetimeSec?: number;
  /**
   * Uploads in progress at once for one client (streaming calls in flight plus unfinished chunked
   * uploads); one more is refused with RESOURCE_EXHAUSTED and a retry hint.
   * @default {Infinity}
   */
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
  /** Where uploads, results and storage errors are counted. @default {not counted} */
  metrics?: SalesMetrics;
  /** Where each finished or failed upload's JSON line goes (`upload_report.ts`). @default {nowhere} */
  uploadLog?: (line: string) => void;
}

/** The service plus what its owner needs: counters for tests and a way to stop it. */
export interface SalesServiceHandle extends SalesService {
  /** Uploads whose aggregator is alive: streaming calls in flight and unfinished chunked uploads. */
  readonly uploadsInProgress: number;
  /** Uploads in progress for one client address, as the per-client limit counts them. */
  uploadsInProgressFor(client: string): number;
  /** Expires idle chunked uploads and those past their maximum lifetime now; returns how many. */
  expireIdleUploads(): number;
  /** Drops all chunked uploads and stops the expiry timer. */
  close(): void;
}

/** Builds the sales service over a result store. */
export function createSalesService(options: SalesServiceOptions): SalesServiceHandle {
  const { store, publicResultsUrl } = options;
  const downloadUrls = options.downloadUrls ?? new DownloadUrlSigner({ publicResultsUrl });
  const clientAddresses = options.clientAddresses ?? new ClientAddresses();
  /**
   * Every live aggregator and the client it counts against, so leaks show in tests and both
   * concurrency limits are kept in one place.
   */
  const runs = new Map<UploadRun, string>();
  /** Live aggregators per client address; a client with none has no entry. */
  const runsPerClient = new Map<string, number>();

  const maxConcurrentUploads = options.maxConcurrentUploads ?? Infinity;
  const maxUploadsPerClient = options.maxUploadsPerClient ?? Infinity;
  const maxBytes = options.inputOptions?.maxBytes ?? Infinity;

  const clientOf = (ctx: CallContext): string =>
    clientAddresses.resolve(ctx.peer, ctx.header(FORWARDED_FOR_HEADER));

  const { metrics } = options;
  const reports = new UploadReports({
    metrics,
    log: options.uploadLog,
    replicaId: store.replicaId,
  });
  const startReport = (ctx: CallContext, kind: UploadKind, filename: string, client: string) =>
    reports.start(
      { transport: ctx.transport ?? "unknown", peer: client, requestId: requestIdOf(ctx) },
      kind,
      filename,
    );
  /** The report of each chunked upload's run, ended when the upload ends whichever way. */
  const chunkedReports = new Map<UploadRun, UploadReport>();
  /** The same reports by upload id, so each call can give its request id to its upload's line. */
  const reportsByUploadId = new Map<string, UploadReport>();
  /** Set while `chunked.start` runs (synchronously): the report its new run belongs to. */
  let startingReport: UploadReport | undefined;
  const endChunkedReport = (run: UploadRun, end: (report: UploadReport) => void): void => {
    const report = chunkedReports.get(run);
    if (report === undefined) return;
    chunkedReports.delete(run);
    if (report.uploadId !== undefined) reportsByUploadId.delete(report.uploadId);
    end(report);
  };
  const touchChunkedReport = (uploadId: string, ctx: CallContext): void => {
    const report = reportsByUploadId.get(uploadId);
    if (report !== undefined) report.origin.requestId = requestIdOf(ctx);
  };
  /** Counts a failed storage operation, then rethrows; an unknown or malformed id is no failure. */
  const countStorageError = (operation: StorageOperation) => (error: unknown): never => {
    const code = error instanceof AppError ? error.code : Status.INTERNAL;
    if (code !== Status.NOT_FOUND && code !== Status.INVALID_ARGUMENT) {
      metrics?.storageError(operation);
    }
    throw error;
  };

  const openRun = (filenames: readonly string[], client: string): UploadRun => {
    // Refused names and counts come before the limits: no retry can help them.
    for (const name of filenames) checkFilename(name);
    checkFileCount(filenames.length);
    const held = runsPerClient.get(client) ?? 0;
    // The client's own limit first: it is the one the client can do something about.
    if (held >= maxUploadsPerClient) {
      throw new AppError(
        Status.RESOURCE_EXHAUSTED,
        `Too many uploads in progress for ${client} (the limit is ${maxUploadsPerClient}): ` +
          `MAX_UPLOADS_PER_CLIENT reached, finish or cancel one, or retry in a few seconds`,
        { retryAfterMs: RETRY_AFTER_MS },
      );
    }
    if (runs.size >= maxConcurrentUploads) {
      throw new AppError(
        Status.RESOURCE_EXHAUSTED,
        `Too many uploads in progress (the limit is ${maxConcurrentUploads}): ` +
          `MAX_CONCURRENT_UPLOADS reached on this server, retry in a few seconds`,
        { retryAfterMs: RETRY_AFTER_MS },
      );
    }
    const run = new UploadRun(filenames, options.inputOptions);
    runs.set(run, client);
    runsPerClient.set(client, held + 1);
    return run;
  };
  /** Frees `run`'s slots; releasing a run again does nothing. */
  const releaseRun = (run: UploadRun): void => {
    const client = runs.get(run);
    if (client === undefined) return;
    runs.delete(run);
    run.close();
    const left = runsPerClient.get(client)! - 1;
    if (left === 0) runsPerClient.delete(client);
    else runsPerClient.set(client, left);
  };
  // A run whose result could not be stored stays counted: a chunked upload keeps it for a retried
  // FinishUpload until it expires. One-shot uploads drop theirs when the call ends.
  const finishRun = async (run: UploadRun): Promise<UploadResponse> => {
    let response;
    try {
      response = await run.finish(
        store,
        (resultId) => downloadUrls.urlFor(resultId),
        (resultId) => downloadUrls.pagePathFor(resultId),
      );
    } catch (error) {
      // Refused input fails in the aggregator; anything else failed writing the result.
      if (!run.inputFailed) metrics?.storageError("write");
      throw error;
    }
    metrics?.resultsStored.inc();
    releaseRun(run);
    return response;
  };

  const chunked = new ChunkedUploads({
    idleTimeoutMs: (options.uploadIdleTimeoutSec ?? 900) * 1000,
    maxLifetimeMs: (options.uploadMaxLifetimeSec ?? 86_400) * 1000,
    chunkSize: options.chunkSize,
    openRun: (filenames, client) => {
      const run = openRun(filenames, client);
      if (startingReport !== undefined) {
        startingReport.run = run;
        chunkedReports.set(run, startingReport);
      }
      return run;
    },
    finishRun: async (run) => {
      const response = await finishRun(run);
      endChunkedReport(run, (report) => report.finished(response));
      return response;
    },
    discardRun: (run, reason) => {
      endChunkedReport(run, (report) => report.failed(reason));
      releaseRun(run);
    },
    now: options.now,
    sweep: options.expiryTimer,
    // Upload ids name the replica whose store (and memory) holds them.
    replicaId: store.replicaId,
  });

  /** Stores a one-shot upload's result, unless its caller left, who could never learn the id. */
  const finishOneShot = async (run: UploadRun, ctx: CallContext): Promise<UploadResponse> => {
    throwIfCancelled(ctx.signal);
    const response = await finishRun(run);
    if (ctx.signal.aborted) {
      await store.delete(response.resultId).catch(countStorageError("delete"));
      throwIfCancelled(ctx.signal);
    }
    return response;
  };

  return {
    get uploadsInProgress() {
      return runs.size;
    },

    uploadsInProgressFor(client: string): number {
      return runsPerClient.get(client) ?? 0;
    },

    async uploadCsv(request: UploadChunk, ctx: CallContext): Promise<UploadResponse> {
      const client = clientOf(ctx);
      const report = startReport(ctx, "unary", request.filename, client);
      let run: UploadRun | undefined;
      try {
        run = report.run = openRun([request.filename], client);
        await run.push(request.data);
        const response = await finishOneShot(run, ctx);
        report.finished(response);
        return response;
      } catch (error) {
        report.failed(error, ctx.signal);
        throw error;
      } finally {
        if (run !== undefined) releaseRun(run);
      }
    },

    async uploadCsvStream(
      chunks: AsyncIterable<UploadChunk>,
      ctx: CallContext,
    ): Promise<UploadResponse> {
      let run: UploadRun | undefined;
      const client = clientOf(ctx);
      const report = startReport(ctx, "stream", "", client);
      try {
        for await (const chunk of chunks) {
          if (run === undefined) {
            run = report.run = openRun([chunk.filename], client);
          } else if (chunk.filename !== "") {
            // A name on a later chunk starts the next file: the current one ends here.
            await run.nextFile(chunk.filename);
          }
          await run.push(chunk.data);
        }
        run ??= report.run = openRun([""], client);
        const response = await finishOneShot(run, ctx);
        report.finished(response);
        return response;
      } catch (error) {
        try {
          // A vanished client also breaks the chunk stream; report that, not the stream's error.
          throwIfCancelled(ctx.signal);
        } catch (cancelled) {
          report.failed(cancelled, ctx.signal);
          throw cancelled;
        }
        report.failed(error, ctx.signal);
        throw error;
      } finally {
        if (run !== undefined) releaseRun(run);
      }
    },

    async downloadResult(request: { resultId: string }): Promise<{ data: Uint8Array }> {
      return { data: await store.read(request.resultId).catch(countStorageError("read")) };
    },

    async getResult(request: { resultId: string }): Promise<ResultDescription> {
      const { resultId } = request;
      const info = await store.info(resultId).catch(countStorageError("read"));
      const meta = info.meta;
      const files = meta?.files ?? [];
      return {
        resultId,
        // Signed anew on every call: this is how a client renews a link that expired.
        downloadUrl: downloadUrls.urlFor(resultId),
        filename: meta?.filename ?? "",
        downloadFilename: resultFileName(files.map((file) => file.name), resultId),
        rows: meta?.rows ?? 0,
        badRows: meta?.badRows ?? 0,
        departments: meta?.departments ?? 0,
        badRowSamples: meta?.badRowSamples ?? [],
        createdAt: meta?.createdAt ?? info.modified,
        sizeBytes: info.size,
        hasMetadata: meta !== undefined,
        files,
        pagePath: downloadUrls.pagePathFor(resultId),
        ...(meta?.largest === undefined ? {} : { largest: meta.largest }),
      };
    },

    startUpload(request: StartUploadRequest, ctx: CallContext) {
      return Promise.try(() => {
        const client = clientOf(ctx);
        // `filenames`, when given, names every file; `filename` is then the first's or empty.
        const filenames = request.filenames?.length ? request.filenames : [request.filename];
        const report = startReport(ctx, "chunked", filenames[0], client);
        try {
          if (request.size > maxBytes) {
            throw new AppError(
              Status.RESOURCE_EXHAUSTED,
              `Upload too large: ${request.size} bytes declared, the limit is ${maxBytes} bytes`,
            );
          }
          startingReport = report;
          const started = chunked.start(filenames, request.size, client);
          report.uploadId = started.uploadId;
          reportsByUploadId.set(started.uploadId, report);
          return started;
        } catch (error) {
          report.failed(error);
          throw error;
        } finally {
          startingReport = undefined;
        }
      });
    },

    appendUpload(request: AppendUploadRequest, ctx: CallContext) {
      return Promise.try(() => {
        touchChunkedReport(request.uploadId, ctx);
        return chunked.append(
          request.uploadId,
          request.offset,
          request.data,
          request.fileIndex ?? 0,
        );
      });
    },

    finishUpload(request: { uploadId: string }, ctx: CallContext): Promise<UploadResponse> {
      return Promise.try(() => {
        touchChunkedReport(request.uploadId, ctx);
        return chunked.finish(request.uploadId);
      });
    },

    cancelUpload(request: { uploadId: string }, ctx: CallContext): Promise<Record<never, never>> {
      return Promise.try(() => {
        touchChunkedReport(request.uploadId, ctx);
        chunked.cancel(request.uploadId);
        return {};
      });
    },

    expireIdleUploads(): number {
      return chunked.expireIdle();
    },

    close(): void {
      const shutDown = new AppError(
        Status.UNAVAILABLE,
        "The server shut down before the upload finished",
      );
      for (const run of [...chunkedReports.keys()]) {
        endChunkedReport(run, (report) => report.failed(shutDown));
      }
      chunked.close();
      // An open gzip stream would keep the process alive through the shared inflate worker.
      for (const run of runs.keys()) run.close();
      runs.clear();
      runsPerClient.clear();
    },
  };
}

/** How long a client refused for concurrency is asked to wait before retrying. */
const RETRY_AFTER_MS = 2000;

function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new AppError(Status.CANCELLED, "The client cancelled the upload");
}
