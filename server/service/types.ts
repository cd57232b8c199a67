/**
 * The SalesService contract as plain TypeScript: what every transport (grpc-js, gRPC-Web) adapts.
 * Numbers are JavaScript numbers (counts and offsets stay far below 2^53); adapters convert to and
 * from their wire types (uint64 is a string or bigint there).
 *
 * @module
 */

import type { LargestDepartments } from "../storage/result_store.ts";

/** One bad row reported back to the caller. */
export interface BadRow {
  /** 1-based line where the record starts in its own file; the header, when present, is line 1. */
  line: number;
  /** A short reason, such as `invalid date`. */
  reason: string;
  /** The record's first 200 characters. */
  raw: string;
  /** The name of the file the row is in, as the client gave it (`""` when it gave none). */
  file: string;
  /** The 0-based position of that file in the upload (two files may share a name). */
  fileIndex: number;
}

/** One file of an upload and its own counts. */
export interface FileSummary {
  /** The file's name as the client gave it; `""` when it gave none. */
  name: string;
  /** Rows in this file, good and bad. */
  rows: number;
  /** Bad rows in this file. */
  badRows: number;
  /** Distinct departments with at least one good row in this file. */
  departments: number;
}

/** The result of a finished upload. */
export interface UploadResponse {
  resultId: string;
  downloadUrl: string;
  rows: number;
  badRows: number;
  departments: number;
  elapsedSec: number;
  badRowSamples: BadRow[];
  /** One entry per uploaded file, in upload order; the counts above are over all files. */
  files: FileSummary[];
  /**
   * The result's page on the web port, `/r/<result id>`, signed as `downloadUrl` is when URLs
   * are signed.
   */
  pagePath: string;
}

/** A stored result as `GetResult` describes it. */
export interface ResultDescription {
  resultId: string;
  /** A fresh download URL: signed anew, with a new expiry, when URLs are signed. */
  downloadUrl: string;
  /** The (first) uploaded file's name as the client gave it; empty when unknown. */
  filename: string;
  /**
   * The name downloads get: `<original name>.result.csv`, `<first name>-and-<n>-more.result.csv`
   * for several files, or `<result id>.csv`.
   */
  downloadFilename: string;
  rows: number;
  badRows: number;
  departments: number;
  badRowSamples: BadRow[];
  /** When the result was stored (for a result without metadata, its file's modification time). */
  createdAt: Date;
  /** Bytes of the result CSV. */
  sizeBytes: number;
  /** False for a result stored before metadata was kept: name and counts are then empty. */
  hasMetadata: boolean;
  /** One entry per uploaded file, as in {@linkcode UploadResponse}; empty without metadata. */
  files: FileSummary[];
  /** The result's page on the web port, signed anew as `downloadUrl` is. */
  pagePath: string;
  /**
   * The largest departments and the grand total, when the result's metadata keeps them: what
   * the result page shows, without reading the CSV. In-process only: `GetResult` does not send
   * them, its callers download the CSV. @default {undefined}
   */
  largest?: LargestDepartments;
}

/**
 * One piece of a streamed upload. `filename` is set on the first chunk of each file: on the
 * stream's first chunk it names the first file; a non-empty one on a later chunk ends the current
 * file and starts the next, whose first bytes are this chunk's `data`.
 */
export interface UploadChunk {
  data: Uint8Array;
  filename: string;
}

/** `StartUpload`'s request. */
export interface StartUploadRequest {
  /** The file's name; with several files, `filenames` rules and this is ignored. */
  filename: string;
  /** Total bytes over all files when known, 0 when not. */
  size: number;
  /** Every file's name in upload order, for an upload of several files; empty for one file. */
  filenames?: string[];
}

/** `AppendUpload`'s request. */
export interface AppendUploadRequest {
  uploadId: string;
  /** Byte offset of `data` within the upload, all files' bytes counted one after another. */
  offset: number;
  data: Uint8Array;
  /**
   * The 0-based index of the file `data` belongs to; it never goes back, and a higher one ends
   * the current file (files skipped over are empty).
   * @default {0}
   */
  fileIndex?: number;
}

/** Per-call information every transport provides. */
export interface CallContext {
  /** Aborted when the client goes away or the call is cancelled. */
  signal: AbortSignal;
  /** A request header / metadata value by lower-case name, or undefined. */
  header(name: string): string | undefined;
  /**
   * The connection's remote address (`1.2.3.4`, `::1`; a port may follow), or undefined when the
   * transport cannot tell (in-process tests). Per-client limits start from it.
   */
  peer?: string;
  /** The transport the call came by (`grpc`, `grpc-web`), for metrics and logs. @default {"unknown"} */
  transport?: string;
  /**
   * The call's `x-request-id`, as the transport resolved and echoed it (`request_id.ts`).
   * @default {the header's, resolved by the service}
   */
  requestId?: string;
}

/** SalesService: one implementation, adapted by `server/grpc/` and `server/web/`. */
export interface SalesService {
  uploadCsv(request: UploadChunk, ctx: CallContext): Promise<UploadResponse>;
  uploadCsvStream(chunks: AsyncIterable<UploadChunk>, ctx: CallContext): Promise<UploadResponse>;
  downloadResult(request: { resultId: string }, ctx: CallContext): Promise<{ data: Uint8Array }>;
  startUpload(
    request: StartUploadRequest,
    ctx: CallContext,
  ): Promise<{ uploadId: string; chunkSize: number }>;
  appendUpload(
    request: AppendUploadRequest,
    ctx: CallContext,
  ): Promise<{ committedOffset: number; rows: number; badRows: number }>;
  finishUpload(request: { uploadId: string }, ctx: CallContext): Promise<UploadResponse>;
  cancelUpload(request: { uploadId: string }, ctx: CallContext): Promise<Record<never, never>>;
  getResult(request: { resultId: string }, ctx: CallContext): Promise<ResultDescription>;
}
