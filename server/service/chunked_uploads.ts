/**
 * Resumable chunked uploads (`StartUpload`, `AppendUpload`, `FinishUpload`, `CancelUpload`) for
 * clients without client streaming. Each upload keeps only its aggregator and a few chunk digests:
 * bytes are aggregated as they arrive and never buffered.
 *
 * Offsets make retries safe. An append at the committed offset is aggregated. An append below it
 * that repeats one of the last committed chunks byte for byte (a retry after a lost reply) is
 * acknowledged without counting it twice. Anything else is `FAILED_PRECONDITION` naming the
 * committed offset, so the client knows where to resume.
 *
 * An upload may hold several files, named at the start; offsets count all their bytes one after
 * another, and each append says which file its bytes belong to (`file_index`). The index never
 * goes back: the first append with a higher one ends the current file (and any skipped over,
 * which stay empty) and starts that one. A repeated chunk must repeat its file index too.
 *
 * Uploads expire and free their memory (and their client's slot) when no bytes were committed for
 * longer than the idle timeout, and in any case at the end of their maximum lifetime. Only
 * committed bytes count as activity: an empty, repeated or refused append, or any other call,
 * would otherwise let a client hold an upload for ever at no cost. A finished upload keeps its
 * response for an idle timeout after it was stored, so a repeated `FinishUpload` returns the same
 * result.
 *
 * An upload lives in the memory of the replica that answered `StartUpload`, so its id names that
 * replica: `<32 hex>.<REPLICA_ID>`. The proxy must route all four calls of an upload to that
 * replica (clients send one `x-upload-id` header on all four, which the proxy hashes). When it does
 * not, the call gets `NOT_FOUND` saying the upload is on another replica, which a client can tell
 * from an expired or cancelled upload (those keep their own messages).
 *
 * @module
 */

import { AppError, Status, toAppError } from "../errors.ts";
import { sha256Hex } from "../storage/hex.ts";
import { newRandomId, UPLOAD_ID } from "../storage/result_id.ts";
import type { UploadRun } from "./upload_run.ts";
import type { UploadResponse } from "./types.ts";

/** Options of {@linkcode ChunkedUploads}. */
export interface ChunkedUploadsOptions {
  /** Milliseconds without committed bytes after which an upload expires. @default {900000} */
  idleTimeoutMs?: number;
  /** Milliseconds after `StartUpload` at which an upload expires, however active. @default {86400000} */
  maxLifetimeMs?: number;
  /** Chunk size suggested to clients in `StartUploadResponse`. @default {4194304} */
  chunkSize?: number;
  /**
   * Starts the aggregation of a new upload for `client` (as {@linkcode ChunkedUploads.start} got
   * it); throws to refuse it.
   */
  openRun: (filenames: readonly string[], client: string) => UploadRun;
  /** Stores the result of a run whose input is complete. */
  finishRun: (run: UploadRun) => Promise<UploadResponse>;
  /**
   * Releases the run of an upload dropped before it finished (cancelled, expired, failed), with
   * why it ended: `CANCELLED` for a cancelled upload, else the error its next call gets.
   */
  discardRun?: (run: UploadRun, reason: AppError) => void;
  /** Millisecond clock; tests pass a fake one and call {@linkcode ChunkedUploads.expireIdle}. @default {performance.now} */
  now?: () => number;
  /** Whether to expire idle uploads on a timer; off for tests that drive the clock. @default {true} */
  sweep?: boolean;
  /**
   * This replica's name (`REPLICA_ID`), put into every upload id it issues so that a call routed
   * to the wrong replica is told so. @default {undefined} (ids without a replica, 32 hex only)
   */
  replicaId?: string;
}

/** A well-formed upload id and the replica it names, if any. */
export interface ParsedUploadId {
  uploadId: string;
  replicaId: string | undefined;
}

/** Parses an upload id (see `UPLOAD_ID` in `result_id.ts`), or throws `AppError(INVALID_ARGUMENT)` naming the expected shape. */
export function parseUploadId(value: string): ParsedUploadId {
  const match = UPLOAD_ID.exec(value);
  if (match === null) {
    throw new AppError(
      Status.INVALID_ARGUMENT,
      `Malformed upload id ${
        JSON.stringify(value.slice(0, 100))
      }: expected 32 lowercase hex characters, optionally followed by "." and a replica id`,
    );
  }
  return { uploadId: value, replicaId: match[2] };
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
  fileIndex: number;
  /** SHA-256, computed off the JavaScript thread while the chunk is aggregated. */
  digest: Promise<string>;
}

interface Upload {
  uploadId: string;
  /** Total size announced by StartUpload; 0 when unknown. */
  declaredSize: number;
  /** Present until the upload is finished. */
  run: UploadRun | undefined;
  /** How many files the upload holds: `file_index` is below it. */
  fileCount: number;
  committedOffset: number;
  rows: number;
  badRows: number;
  recentChunks: CommittedChunk[];
  /** When bytes were last committed (or the upload started, or its result was stored). */
  lastActivity: number;
  /** When the upload started; it expires `maxLifetimeMs` later whatever it does. */
  startedAt: number;
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
  readonly #maxLifetimeMs: number;
  readonly #chunkSize: number;
  readonly #openRun: (filenames: readonly string[], client: string) => UploadRun;
  readonly #finishRun: (run: UploadRun) => Promise<UploadResponse>;
  readonly #discardRun: (run: UploadRun, reason: AppError) => void;
  readonly #now: () => number;
  readonly #sweepTimer: ReturnType<typeof setInterval> | undefined;
  readonly #replicaId: string | undefined;

  constructor(options: ChunkedUploadsOptions) {
    this.#replicaId = options.replicaId;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 900_000;
    this.#maxLifetimeMs = options.maxLifetimeMs ?? 86_400_000;
    this.#chunkSize = options.chunkSize ?? 4 * 1024 * 1024;
    this.#openRun = options.openRun;
    this.#finishRun = options.finishRun;
    this.#discardRun = options.discardRun ?? (() => {});
    this.#now = options.now ?? (() => performance.now());
    if (options.sweep ?? true) {
      // A quarter of the shorter limit keeps expiry within 25% late at a negligible cost; a call
      // to an upload past its limits finds it gone at once anyway (see #get).
      const shorter = Math.min(this.#idleTimeoutMs, this.#maxLifetimeMs);
      const period = Math.min(Math.max(shorter / 4, 10), 15_000);
      const timer = setInterval(() => this.expireIdle(), period);
      Deno.unrefTimer(timer);
      this.#sweepTimer = timer;
    }
  }

  /** Uploads held in memory (in progress or finished and not yet expired). */
  get size(): number {
    return this.#uploads.size;
  }

  /**
   * Starts an upload of the files named `filenames` (one or more), `declaredSize` bytes in all
   * (0: unknown), for `client` (an address).
   */
  start(
    filenames: readonly string[],
    declaredSize: number,
    client = "unknown",
  ): { uploadId: string; chunkSize: number } {
    const uploadId = this.#replicaId === undefined
      ? newRandomId()
      : `${newRandomId()}.${this.#replicaId}`;
    const now = this.#now();
    this.#uploads.set(uploadId, {
      uploadId,
      declaredSize,
      run: this.#openRun(filenames, client),
      fileCount: Math.max(filenames.length, 1),
      committedOffset: 0,
      rows: 0,
      badRows: 0,
      recentChunks: [],
      lastActivity: now,
      startedAt: now,
      sealed: false,
      finishing: undefined,
      response: undefined,
    });
    return { uploadId, chunkSize: this.#chunkSize };
  }

  /**
   * Aggregates `data` found at byte `offset` of the upload, in file `fileIndex`, or acknowledges a
   * retry. An empty append changes nothing, its file index included.
   */
  async append(
    uploadId: string,
    offset: number,
    data: Uint8Array,
    fileIndex = 0,
  ): Promise<AppendProgress> {
    const upload = this.#get(uploadId);
    if (!Number.isSafeInteger(fileIndex) || fileIndex < 0 || fileIndex >= upload.fileCount) {
      throw new AppError(
        Status.INVALID_ARGUMENT,
        `Invalid file_index in AppendUpload: ${fileIndex}, upload ${uploadId} has ${upload.fileCount} ${
          upload.fileCount === 1 ? "file (index 0)" : `files (0 to ${upload.fileCount - 1})`
        }`,
      );
    }
    if (
      offset < upload.committedOffset || (offset === upload.committedOffset && data.length === 0)
    ) {
      const progress = progressOf(upload);
      if (await isRepeat(upload, offset, data, fileIndex)) return progress;
      throw offsetMismatch(upload, offset);
    }
    if (upload.run === undefined || upload.sealed) {
      throw new AppError(
        Status.FAILED_PRECONDITION,
        `Cannot append to upload ${uploadId}: it is already finished`,
      );
    }
    if (offset !== upload.committedOffset) throw offsetMismatch(upload, offset);
    if (fileIndex < upload.run.fileIndex) {
      throw new AppError(
        Status.FAILED_PRECONDITION,
        `Cannot append to upload ${uploadId}: file_index ${fileIndex} goes back from file ${upload.run.fileIndex} (a file ends when a later one starts)`,
      );
    }
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
    // A later file ends the current one; the run holds this append's bytes until it has.
    const moved = upload.run.moveToFile(fileIndex);
    // push() takes the bytes before it returns (or queues them behind the file change) and its
    // promise is only backpressure (gzip is inflated on another thread), so the offset moves now:
    // a retry arriving meanwhile is a repeat.
    const pushed = upload.run.push(data);
    upload.recentChunks.push({ offset, length: data.length, fileIndex, digest });
    if (upload.recentChunks.length > RECENT_CHUNKS) upload.recentChunks.shift();
    upload.committedOffset = end;
    try {
      await Promise.all([moved, pushed]);
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
    // Only here: committed bytes are the one activity that cannot be repeated for free.
    upload.lastActivity = this.#now();
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
        // The response is kept for a full idle timeout from now, for a repeated FinishUpload. This
        // happens once per upload, so it cannot keep one alive.
        upload.lastActivity = this.#now();
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
      // On a storage failure `run` stays: its input is complete, so a later FinishUpload may try
      // again until the upload expires.
      upload.finishing = undefined;
    });
    return upload.finishing;
  }

  /** Drops an upload and its state; cancelling a gone upload again is not an error. */
  cancel(uploadId: string): void {
    const id = this.#checkReplica(uploadId);
    if (this.#tombstones.has(id)) return;
    const upload = this.#uploads.get(id);
    if (upload === undefined) throw this.#unknown(id);
    const expiry = this.#expiryOf(upload, this.#now());
    if (expiry !== undefined) return this.#remove(upload, expiry);
    if (upload.finishing !== undefined) {
      throw new AppError(
        Status.FAILED_PRECONDITION,
        `Cannot cancel upload ${uploadId}: its result is being stored`,
      );
    }
    this.#remove(
      upload,
      new AppError(Status.NOT_FOUND, `Upload ${uploadId} was cancelled`),
      new AppError(Status.CANCELLED, "The client cancelled the upload"),
    );
  }

  /**
   * Expires uploads without committed bytes for longer than the idle timeout, and uploads past
   * their maximum lifetime; returns how many.
   */
  expireIdle(): number {
    const now = this.#now();
    let expired = 0;
    for (const upload of this.#uploads.values()) {
      const reason = this.#expiryOf(upload, now);
      if (reason !== undefined) {
        this.#remove(upload, reason);
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
    const upload = this.#uploads.get(this.#checkReplica(uploadId));
    if (upload !== undefined) {
      // Between two sweeps, a call still finds an upload past its limits gone.
      const reason = this.#expiryOf(upload, this.#now());
      if (reason === undefined) return upload;
      this.#remove(upload, reason);
      throw reason;
    }
    throw this.#tombstones.get(uploadId) ?? this.#unknown(uploadId);
  }

  /** Returns the well-formed `uploadId`, or throws NOT_FOUND when another replica holds it. */
  #checkReplica(uploadId: string): string {
    const { replicaId } = parseUploadId(uploadId);
    if (replicaId !== undefined && replicaId !== this.#replicaId) {
      // A routing problem, not a gone upload: say where it is, so that the operator can look at
      // the proxy's hashing and the client at the header it sends.
      throw new AppError(
        Status.NOT_FOUND,
        `Upload ${uploadId} is not on this replica (${
          this.#replicaId ?? "unnamed"
        }): replica ${replicaId} holds it, and the proxy sent this call elsewhere (that replica stopped, or the client does not send one x-upload-id header on all four calls of the upload)`,
      );
    }
    return uploadId;
  }

  /** The error for an id this replica issued (or cannot place) but does not know. */
  #unknown(uploadId: string): AppError {
    if (this.#replicaId !== undefined && parseUploadId(uploadId).replicaId === this.#replicaId) {
      // Ours, yet neither held nor remembered as gone: issued before this replica restarted.
      return new AppError(
        Status.NOT_FOUND,
        `Upload ${uploadId} not found on replica ${this.#replicaId}: it was lost when the replica restarted, or its state was dropped long ago`,
      );
    }
    return new AppError(Status.NOT_FOUND, `Upload ${uploadId} not found`);
  }

  /** Why `upload` must go at `now`, or undefined while it may stay. */
  #expiryOf(upload: Upload, now: number): AppError | undefined {
    // Storing a result is the server's own work: let it end, the next sweep removes the upload.
    if (upload.finishing !== undefined) return undefined;
    if (now - upload.startedAt > this.#maxLifetimeMs) {
      return new AppError(
        Status.NOT_FOUND,
        `Upload ${upload.uploadId} passed its maximum lifetime of ${
          secondsOf(this.#maxLifetimeMs)
        } s (UPLOAD_MAX_LIFETIME_SEC) and was dropped`,
      );
    }
    if (now - upload.lastActivity > this.#idleTimeoutMs) {
      return new AppError(
        Status.NOT_FOUND,
        `Upload ${upload.uploadId} expired after ${
          secondsOf(this.#idleTimeoutMs)
        } s without activity`,
      );
    }
    return undefined;
  }

  /** Drops `upload`: later calls get `reason`; its run is discarded with `outcome`. */
  #remove(upload: Upload, reason: AppError, outcome = reason): void {
    this.#uploads.delete(upload.uploadId);
    if (upload.run !== undefined) this.#discardRun(upload.run, outcome);
    upload.run = undefined;
    this.#tombstones.set(upload.uploadId, reason);
    if (this.#tombstones.size > MAX_TOMBSTONES) {
      this.#tombstones.delete(this.#tombstones.keys().next().value!);
    }
  }
}

/** Milliseconds as seconds with at most one decimal, for messages. */
function secondsOf(ms: number): number {
  return Math.round(ms / 100) / 10;
}

function progressOf(upload: Upload): AppendProgress {
  return { committedOffset: upload.committedOffset, rows: upload.rows, badRows: upload.badRows };
}

/** Whether `data` at `offset` of file `fileIndex` is byte for byte one of the recent chunks. */
async function isRepeat(
  upload: Upload,
  offset: number,
  data: Uint8Array,
  fileIndex: number,
): Promise<boolean> {
  if (data.length === 0) return offset <= upload.committedOffset;
  const chunk = upload.recentChunks.find((chunk) =>
    chunk.offset === offset && chunk.length === data.length && chunk.fileIndex === fileIndex
  );
  return chunk !== undefined && (await chunk.digest) === (await digestOf(data));
}

/** SHA-256 of `data`, hex; WebCrypto runs it off the JavaScript thread. */
const digestOf = sha256Hex;

function offsetMismatch(upload: Upload, offset: number): AppError {
  return new AppError(
    Status.FAILED_PRECONDITION,
    `Cannot append to upload ${upload.uploadId}: offset ${offset} does not match committed offset ${upload.committedOffset}`,
  );
}
