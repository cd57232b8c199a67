/**
 * Resumable chunked uploads (`StartUpload`, `AppendUpload`, `FinishUpload`, `CancelUpload`) for
 * clients without client streaming. Each upload keeps only its aggregator and a few chunk digests:
 * bytes are aggregated as they arrive and never buffered.
 *
 * Offsets make retries safe. An append at the committed offset is aggregated. An append below it
 * that repeats one of the last committed chunks byte for byte (a retry after a lost reply) is
 * acknowledged without counting it twice. Anything else is `FAILED_PRECONDITION` naming the
 * committed offset, so the client knows where to resume. Uploads idle for longer than the timeout
 * expire and free their memory; a finished upload keeps its response until then, so a repeated
 * `FinishUpload` returns the same result.
 *
 * @module
 */

import { AppError, Status, toAppError } from "../errors.ts";
import { newRandomId, parseRandomId } from "../storage/result_id.ts";
import type { UploadRun } from "./upload_run.ts";
import type { UploadResponse } from "./types.ts";

/** Options of {@linkcode ChunkedUploads}. */
export interface ChunkedUploadsOptions {
  /** Milliseconds without a call after which an upload expires. @default {900000} */
  idleTimeoutMs?: number;
  /** Chunk size suggested to clients in `StartUploadResponse`. @default {4194304} */
  chunkSize?: number;
  /** Starts the aggregation of a new upload. */
  openRun: (filename: string) => UploadRun;
  /** Stores the result of a run whose input is complete. */
  finishRun: (run: UploadRun) => Promise<UploadResponse>;
  /** Releases the run of an upload dropped before it finished (cancelled, expired, failed). */
  discardRun?: (run: UploadRun) => void;
  /** Millisecond clock; tests pass a fake one and call {@linkcode ChunkedUploads.expireIdle}. @default {performance.now} */
  now?: () => number;
  /** Whether to expire idle uploads on a timer; off for tests that drive the clock. @default {true} */
  sweep?: boolean;
}

/** Progress of an upload, as `AppendUploadResponse` reports it. */
export interface AppendProgress {
  committedOffset: number;
  rows: number;
  badRows: number;
}

/** How many recent chunks a retry may repeat; a client rarely has more than a few in flight. */
const RECENT_CHUNKS = 16;
/** Ids of gone uploads remembered to explain why they are gone (expired, cancelled, failed). */
const MAX_TOMBSTONES = 10_000;

interface CommittedChunk {
  offset: number;
  length: number;
  /** SHA-256, computed off the JavaScript thread while the chunk is aggregated. */
  digest: Promise<string>;
}

interface Upload {
  uploadId: string;
  /** Total size announced by StartUpload; 0 when unknown. */
  declaredSize: number;
  /** Present until the upload is finished. */
  run: UploadRun | undefined;
  committedOffset: number;
  rows: number;
  badRows: number;
  recentChunks: CommittedChunk[];
  lastActivity: number;
  /** Set by the first FinishUpload: no new bytes after that. */
  sealed: boolean;
  /** Set while the result is being stored. */
  finishing: Promise<UploadResponse> | undefined;
  /** Set once the result is stored. */
  response: UploadResponse | undefined;
}

/** The chunked uploads in progress, by upload id. */
export class ChunkedUploads {
  readonly #uploads = new Map<string, Upload>();
  /** Why a gone upload is gone: the error its next call gets. Oldest first. */
  readonly #tombstones = new Map<string, AppError>();
  readonly #idleTimeoutMs: number;
  readonly #chunkSize: number;
  readonly #openRun: (filename: string) => UploadRun;
  readonly #finishRun: (run: UploadRun) => Promise<UploadResponse>;
  readonly #discardRun: (run: UploadRun) => void;
  readonly #now: () => number;
  readonly #sweepTimer: ReturnType<typeof setInterval> | undefined;

  constructor(options: ChunkedUploadsOptions) {
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 900_000;
    this.#chunkSize = options.chunkSize ?? 4 * 1024 * 1024;
    this.#openRun = options.openRun;
    this.#finishRun = options.finishRun;
    this.#discardRun = options.discardRun ?? (() => {});
    this.#now = options.now ?? (() => performance.now());
    if (options.sweep ?? true) {
      // A quarter of the timeout keeps expiry within 25% late at a negligible cost.
      const period = Math.min(Math.max(this.#idleTimeoutMs / 4, 10), 15_000);
      const timer = setInterval(() => this.expireIdle(), period);
      Deno.unrefTimer(timer);
      this.#sweepTimer = timer;
    }
  }

  /** Uploads held in memory (in progress or finished and not yet expired). */
  get size(): number {
    return this.#uploads.size;
  }

  /** Starts an upload of `declaredSize` bytes (0: unknown). */
  start(filename: string, declaredSize: number): { uploadId: string; chunkSize: number } {
    const uploadId = newRandomId();
    this.#uploads.set(uploadId, {
      uploadId,
      declaredSize,
      run: this.#openRun(filename),
      committedOffset: 0,
      rows: 0,
      badRows: 0,
      recentChunks: [],
      lastActivity: this.#now(),
      sealed: false,
      finishing: undefined,
      response: undefined,
    });
    return { uploadId, chunkSize: this.#chunkSize };
  }

  /** Aggregates `data` found at byte `offset` of the file, or acknowledges a retry. */
  async append(uploadId: string, offset: number, data: Uint8Array): Promise<AppendProgress> {
    const upload = this.#get(uploadId);
    upload.lastActivity = this.#now();
    if (
      offset < upload.committedOffset || (offset === upload.committedOffset && data.length === 0)
    ) {
      const progress = progressOf(upload);
      if (await isRepeat(upload, offset, data)) return progress;
      throw offsetMismatch(upload, offset);
    }
    if (upload.run === undefined || upload.sealed) {
      throw new AppError(
        Status.FAILED_PRECONDITION,
        `Cannot append to upload ${uploadId}: it is already finished`,
      );
    }
    if (offset !== upload.committedOffset) throw offsetMismatch(upload, offset);
    const end = offset + data.length;
    if (upload.declaredSize > 0 && end > upload.declaredSize) {
      throw new AppError(
        Status.OUT_OF_RANGE,
        `Cannot append to upload ${uploadId}: bytes up to ${end} pass the declared size ${upload.declaredSize}`,
      );
    }
    // WebCrypto hashes on another thread, so the digest costs this thread nothing while it
    // aggregates the same bytes (with node:crypto it was a fifth of a chunked upload's CPU).
    const digest = digestOf(data);
    try {
      upload.run.push(data);
    } catch (error) {
      // The aggregator may be mid-record: the upload cannot continue.
      this.#remove(
        upload,
        error instanceof AppError ? error : new AppError(
          Status.INTERNAL,
          "Internal server error",
          { cause: error },
        ),
      );
      throw error;
    }
    upload.recentChunks.push({ offset, length: data.length, digest });
    if (upload.recentChunks.length > RECENT_CHUNKS) upload.recentChunks.shift();
    upload.committedOffset = end;
    upload.rows = upload.run.rows;
    upload.badRows = upload.run.badRows;
    const progress = progressOf(upload);
    // Answer once the digest exists: a retry of this chunk can then be checked, and a client
    // cannot run ahead of the hashing.
    await digest;
    return progress;
  }

  /** Stores the result; calling it again for the same upload returns the same response. */
  finish(uploadId: string): Promise<UploadResponse> {
    const upload = this.#get(uploadId);
    upload.lastActivity = this.#now();
    if (upload.response !== undefined) return Promise.resolve(upload.response);
    if (upload.finishing !== undefined) return upload.finishing;
    if (upload.declaredSize > 0 && upload.committedOffset !== upload.declaredSize) {
      return Promise.reject(
        new AppError(
          Status.FAILED_PRECONDITION,
          `Cannot finish upload ${uploadId}: received ${upload.committedOffset} of ${upload.declaredSize} bytes`,
        ),
      );
    }
    const run = upload.run!;
    upload.sealed = true;
    upload.finishing = this.#finishRun(run).then(
      (response) => {
        upload.response = response;
        upload.run = undefined;
        return response;
      },
      (error) => {
        // Refused input (too many departments in the last row, truncated gzip) fails every retry
        // the same way: free it now rather than hold its memory and slot until it expires.
        if (run.inputFailed) {
          upload.finishing = undefined;
          this.#remove(upload, toAppError(error));
        }
        throw error;
      },
    ).finally(() => {
      // On a storage failure `run` stays: its input is complete, so a later FinishUpload may try again.
      upload.finishing = undefined;
      upload.lastActivity = this.#now();
    });
    return upload.finishing;
  }

  /** Drops an upload and its state; cancelling a gone upload again is not an error. */
  cancel(uploadId: string): void {
    const tombstone = this.#tombstones.get(parseRandomId(uploadId, "upload"));
    if (tombstone !== undefined) return;
    const upload = this.#get(uploadId);
    if (upload.finishing !== undefined) {
      throw new AppError(
        Status.FAILED_PRECONDITION,
        `Cannot cancel upload ${uploadId}: its result is being stored`,
      );
    }
    this.#remove(upload, new AppError(Status.NOT_FOUND, `Upload ${uploadId} was cancelled`));
  }

  /** Expires uploads idle for longer than the timeout; returns how many. */
  expireIdle(): number {
    const now = this.#now();
    let expired = 0;
    for (const upload of this.#uploads.values()) {
      if (upload.finishing === undefined && now - upload.lastActivity > this.#idleTimeoutMs) {
        const seconds = Math.round(this.#idleTimeoutMs / 100) / 10;
        this.#remove(
          upload,
          new AppError(
            Status.NOT_FOUND,
            `Upload ${upload.uploadId} expired after ${seconds} s without activity`,
          ),
        );
        expired++;
      }
    }
    return expired;
  }

  /** Drops every upload and stops the expiry timer. */
  close(): void {
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
    this.#uploads.clear();
    this.#tombstones.clear();
  }

  #get(uploadId: string): Upload {
    const upload = this.#uploads.get(parseRandomId(uploadId, "upload"));
    if (upload !== undefined) return upload;
    throw this.#tombstones.get(uploadId) ??
      new AppError(Status.NOT_FOUND, `Upload ${uploadId} not found`);
  }

  #remove(upload: Upload, reason: AppError): void {
    this.#uploads.delete(upload.uploadId);
    if (upload.run !== undefined) this.#discardRun(upload.run);
    upload.run = undefined;
    this.#tombstones.set(upload.uploadId, reason);
    if (this.#tombstones.size > MAX_TOMBSTONES) {
      this.#tombstones.delete(this.#tombstones.keys().next().value!);
    }
  }
}

function progressOf(upload: Upload): AppendProgress {
  return { committedOffset: upload.committedOffset, rows: upload.rows, badRows: upload.badRows };
}

/** Whether `data` at `offset` is byte for byte one of the recently committed chunks. */
async function isRepeat(upload: Upload, offset: number, data: Uint8Array): Promise<boolean> {
  if (data.length === 0) return offset <= upload.committedOffset;
  const chunk = upload.recentChunks.find((chunk) =>
    chunk.offset === offset && chunk.length === data.length
  );
  return chunk !== undefined && (await chunk.digest) === (await digestOf(data));
}

/** SHA-256 of `data`, hex; WebCrypto runs it off the JavaScript thread. */
async function digestOf(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function offsetMismatch(upload: Upload, offset: number): AppError {
  return new AppError(
    Status.FAILED_PRECONDITION,
    `Cannot append to upload ${upload.uploadId}: offset ${offset} does not match committed offset ${upload.committedOffset}`,
  );
}
