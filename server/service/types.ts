/**
 * The SalesService contract as plain TypeScript: what every transport (grpc-js, gRPC-Web) adapts.
 * Numbers are JavaScript numbers (counts and offsets stay far below 2^53); adapters convert to and
 * from their wire types (uint64 is a string or bigint there).
 *
 * @module
 */

/** One bad row reported back to the caller. */
export interface BadRow {
  /** 1-based line where the record starts; the header, when present, is line 1. */
  line: number;
  /** A short reason, such as `invalid date`. */
  reason: string;
  /** The record's first 200 characters. */
  raw: string;
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
}

/** A stored result as `GetResult` describes it. */
export interface ResultDescription {
  resultId: string;
  /** A fresh download URL: signed anew, with a new expiry, when URLs are signed. */
  downloadUrl: string;
  /** The uploaded file's name as the client gave it; empty when unknown. */
  filename: string;
  /** The name downloads get: `<original name>.result.csv`, or `<result id>.csv`. */
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
}

/** One piece of a streamed upload; `filename` is set on the first chunk. */
export interface UploadChunk {
  data: Uint8Array;
  filename: string;
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
    request: { filename: string; size: number },
    ctx: CallContext,
  ): Promise<{ uploadId: string; chunkSize: number }>;
  appendUpload(
    request: { uploadId: string; offset: number; data: Uint8Array },
    ctx: CallContext,
  ): Promise<{ committedOffset: number; rows: number; badRows: number }>;
  finishUpload(request: { uploadId: string }, ctx: CallContext): Promise<UploadResponse>;
  cancelUpload(request: { uploadId: string }, ctx: CallContext): Promise<Record<never, never>>;
  getResult(request: { resultId: string }, ctx: CallContext): Promise<ResultDescription>;
}
