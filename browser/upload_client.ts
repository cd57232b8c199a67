/**
 * The browser side of the resumable upload: a gRPC-Web client for SalesService whose AppendUpload
 * request body is a `Blob` (frame header + `file.slice()` or a gzip member), and the upload loop
 * with compression, progress, cancel and retry. No Preact here, so it runs (and is tested)
 * anywhere `fetch` exists.
 *
 * @module
 */

import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { SalesService } from "../gen/sales_pb.ts";
import { formatBytes } from "./format.ts";
import {
  inlineCompressor,
  isGzip,
  type MemberCompressor,
  pieceBytesFor,
  storedGzipMember,
  storedOverhead,
  workerCompressor,
} from "./gzip_members.ts";
import type { BadRow, UploadResponse } from "../server/service/types.ts";
import type { ResultBadRow, ResultFile } from "./result_data.ts";
import { appendChunks, type RetryOptions, withRetry as retrying } from "./resumable_upload.ts";

/** A gRPC-Web client for `sales.v1.SalesService`. */
export type GrpcWebSalesClient = Client<typeof SalesService>;

/** Options for {@linkcode createGrpcWebSalesClient}. */
export interface GrpcWebSalesClientOptions {
  /** The fetch used underneath; tests pass an in-process handler. @default {globalThis.fetch} */
  fetch?: typeof globalThis.fetch;
  /** Extra headers on every call (room for `authorization` when the server requires a token). */
  headers?: () => Record<string, string>;
}

/**
 * The header carrying a chunked upload's routing key (the same as the CLI's): the proxy hashes it
 * so that the four calls of one upload reach the replica holding it.
 */
export const ROUTING_HEADER = "x-upload-id";

function routingHeader(routingKey: string | undefined): Record<string, string> {
  return routingKey === undefined ? {} : { [ROUTING_HEADER]: routingKey };
}

/** Marks an AppendUpload whose `data` travels as a Blob; stripped before the request leaves. */
const BLOB_BODY_HEADER = "x-sales-blob-body";
const pendingBlobBodies = new Map<string, Blob>();
let nextBlobBodyKey = 0;

/** Creates the client for the endpoint at `baseUrl` (an origin, optionally with a path). */
export function createGrpcWebSalesClient(
  baseUrl: string,
  options: GrpcWebSalesClientOptions = {},
): GrpcWebSalesClient {
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
  client: GrpcWebSalesClient,
  request: {
    uploadId: string;
    offset: number;
    chunk: Blob;
    routingKey?: string;
    /** The file the chunk belongs to, in a several-file upload. @default {0} */
    fileIndex?: number;
  },
  signal?: AbortSignal,
): Promise<{ committedOffset: number; rows: number; badRows: number }> {
  const key = String(nextBlobBodyKey++);
  pendingBlobBodies.set(key, request.chunk);
  try {
    const response = await client.appendUpload(
      {
        uploadId: request.uploadId,
        offset: BigInt(request.offset),
        fileIndex: request.fileIndex ?? 0,
      },
      { headers: { [BLOB_BODY_HEADER]: key, ...routingHeader(request.routingKey) }, signal },
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
  /** The result page's path (`/r/<id>`, signed when the server signs addresses). */
  pagePath: string;
  /** Each file's own counts, in upload order. */
  files: ResultFile[];
  /** Bad rows in upload order (each file's first ones as room allows), each with its file. */
  badRowSamples: ResultBadRow[];
  /** Bytes of all files. */
  bytes: number;
  /** Bytes sent to the server: fewer than `bytes` when the page compressed the file. */
  wireBytes: number;
  /** Whether the page compressed the file (false for a file that already was gzip). */
  compressed: boolean;
  /** Wall-clock seconds in the browser, from StartUpload to the result. */
  totalSec: number;
  resultCsv: Uint8Array;
}

/** Progress of a running upload. */
export interface UploadProgress {
  phase: "uploading" | "retrying" | "finishing";
  /** Bytes of the file sent so far (before compression), for the progress bar. */
  sentBytes: number;
  /** Size of the file (of all files, one after another). */
  totalBytes: number;
  /** The file being sent, by its position. */
  fileIndex: number;
  /** Bytes the server acknowledged: after compression when `compressed`. */
  wireBytes: number;
  /** Whether the page compresses the file on its way. */
  compressed: boolean;
  rows: number;
  badRows: number;
  /** Recent speed in bytes of the file per second, when known. */
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
  /**
   * Whether the file may travel gzip-compressed: it does when the first chunk shows the link to be
   * slower than the compressors. A file that already is gzip is always sent as it is.
   * @default {true}
   */
  compress?: boolean;
  /**
   * What compresses the file's slices; closed at the end of the upload.
   * @default {workers, as many as the cores (at most 4), or the page's own thread}
   */
  compressor?: () => MemberCompressor;
}

/** What one compressor is expected to deflate per second before it was measured (Chromium). */
const DEFLATE_BYTES_PER_SEC = 20_000_000;
/** Compress when the compressors are expected to beat the link by this much (below 1). */
const DEFLATE_MARGIN = 0.8;

/** Codes worth retrying at the same offset: the chunk or its reply may simply have been lost. */
const RETRYABLE = new Set([Code.Unavailable, Code.Unknown, Code.DeadlineExceeded, Code.Aborted]);

/** Thrown when an upload gives up; `message` is written for people. */
export class UploadError extends Error {
  override name = "UploadError";
  constructor(message: string, readonly code: Code, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Uploads one file as a result: {@linkcode uploadFiles} with one file. */
export function uploadFile(
  client: GrpcWebSalesClient,
  file: Blob & { name?: string },
  options: UploadFileOptions = {},
): Promise<UploadSummary> {
  return uploadFiles(client, [file], options);
}

/** `compressor` for one file's source, which closes it: the upload closes it once, at its end. */
function shared(compressor: MemberCompressor): MemberCompressor {
  return {
    parallelism: compressor.parallelism,
    compress: (piece) => compressor.compress(piece),
    close() {},
  };
}

/**
 * Uploads `files` as one result: one StartUpload naming them all, AppendUpload calls saying
 * which file their data belongs to (`file_index`, in order, offsets counting every file's wire
 * bytes one after another), FinishUpload, then reads the result CSV. The server detects gzip per
 * file, so each file travels as it is, or as gzip members when the page compresses it.
 *
 * Unless `compress` is false, the first chunk of the first file that could be compressed (not
 * gzip already, over one chunk) measures the link: when it is slower than the compressors, that
 * upload is cancelled and every file starts again, those not gzip already as gzip members (size
 * unknown ahead, so StartUpload says 0). A file cannot switch from plain to gzip midway, and
 * deflating on a fast link (loopback, a LAN) would only slow it down, so one chunk (and the
 * small or gzip files before it) is the price of asking.
 */
export async function uploadFiles(
  client: GrpcWebSalesClient,
  files: readonly (Blob & { name?: string })[],
  options: UploadFileOptions = {},
): Promise<UploadSummary> {
  if (files.length === 0) throw new UploadError("Choose at least one file", Code.InvalidArgument);
  const { signal, onProgress = () => {} } = options;
  const attempts = options.attempts ?? 6;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const startedAt = performance.now();
  const names = files.map((file) => file.name ?? "upload.csv");
  const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
  // Sent on all four chunked calls: behind several replicas the proxy hashes it, so every call
  // of this upload (and of its gzip restart) reaches the replica that holds it.
  const routing = routingHeader(crypto.randomUUID());
  let speed = new SpeedMeter();
  let uploadId: string | undefined;
  const sources = new Set<ChunkSource>();
  let compressor: MemberCompressor | undefined;
  let progress: UploadProgress = {
    phase: "uploading",
    sentBytes: 0,
    totalBytes,
    wireBytes: 0,
    compressed: false,
    rows: 0,
    badRows: 0,
    fileIndex: 0,
  };
  const report = (update: Partial<UploadProgress>) => {
    progress = { ...progress, retry: undefined, ...update };
    onProgress(progress);
  };

  let phaseBeforeRetry = progress.phase;
  const retry: RetryOptions = {
    attempts,
    retryDelayMs,
    signal,
    isRetryable: (error) => RETRYABLE.has(ConnectError.from(error).code),
    onRetry: ({ attempt, delayMs, error }) => {
      phaseBeforeRetry = progress.phase;
      report({
        phase: "retrying",
        retry: { attempt, attempts, delayMs, reason: ConnectError.from(error).rawMessage },
      });
    },
    onRetryWaited: () => report({ phase: phaseBeforeRetry }),
  };
  /** Runs `call`, retrying retryable failures with exponential backoff. */
  const withRetry = <T>(call: () => Promise<T>): Promise<T> => retrying(call, retry);
  const closeAll = () => {
    for (const source of sources) source.close();
    sources.clear();
    compressor?.close();
    compressor = undefined;
  };

  try {
    const canCompress = (options.compress ?? true) && typeof CompressionStream === "function";
    const alreadyGzip = await Promise.all(files.map((file) => isGzip(file)));
    onProgress(progress);
    const begin = async (compressed: boolean) => {
      const started = await withRetry(() =>
        client.startUpload({
          filename: names[0],
          filenames: files.length > 1 ? names : [],
          // The compressed size is known only at the end: 0 tells the server it is unknown.
          size: BigInt(compressed ? 0 : totalBytes),
        }, { signal, headers: routing })
      );
      uploadId = started.uploadId;
      return Math.min(
        started.chunkSize > 0 ? started.chunkSize : 4 * 1024 * 1024,
        options.maxChunkBytes ?? 8 * 1024 * 1024,
      );
    };
    const makeCompressor = () => (compressor ??= (options.compressor ?? createPageCompressor)());
    const chunkBytes = await begin(false);
    /** Whether files not gzip already go as gzip members; decided by the first chunk. */
    let compressed = false;
    let measured = !canCompress;
    /** The measuring file's gzip source, already deflating, for the restart. */
    let ready: { index: number; source: GzipMemberSource } | undefined;
    let wireOffset = 0;
    speed.add(0);
    for (let restart = true; restart;) {
      restart = false;
      wireOffset = 0;
      let fileStart = 0;
      for (let index = 0; index < files.length && !restart; index++) {
        const file = files[index];
        const compressible = canCompress && !alreadyGzip[index];
        let source: ChunkSource;
        let probe: GzipMemberSource | undefined;
        if (ready?.index === index) {
          source = ready.source;
          ready = undefined;
        } else if (compressed && compressible) {
          source = new GzipMemberSource(file, chunkBytes, shared(makeCompressor()));
        } else {
          source = new SliceSource(file, chunkBytes);
          if (!measured && compressible && file.size > chunkBytes) {
            // While the first chunk travels as it is, the compressors start on the first slices:
            // which finishes first tells whether compressing pays, and on a slow link no time is
            // lost.
            probe = new GzipMemberSource(file, chunkBytes, shared(makeCompressor()));
            sources.add(probe);
          }
        }
        sources.add(source);
        const base = wireOffset;
        const start = fileStart;
        const gzipMembers = source instanceof GzipMemberSource;
        wireOffset = await appendChunks<Chunk>({
          offset: base,
          next: (at) => source.next(at - base),
          sizeOf: (chunk) => chunk.data.size,
          append: (at, chunk) =>
            appendBlob(client, {
              uploadId: uploadId!,
              offset: at,
              fileIndex: index,
              chunk: chunk.data,
              routingKey: routing[ROUTING_HEADER],
            }, signal),
          // A gzip member must arrive whole: the server may not keep only part of one.
          wholeChunks: () => gzipMembers,
          retry,
          commitError: (sentOffset, committed) =>
            new UploadError(
              `The server did not accept the data of ${
                names[index]
              } at ${sentOffset} (committed ${committed})`,
              Code.Internal,
            ),
          onAppended: async (chunk, appended, sendMs) => {
            source.sent(chunk, sendMs);
            if (probe !== undefined) {
              measured = true;
              // P compressors that each take under P times what the link took for the same
              // bytes deliver more than the link does; the margin covers their contending for
              // the cores.
              const limitMs = DEFLATE_MARGIN * compressor!.parallelism * sendMs;
              if (await probe.deflatesWithin(limitMs)) {
                client.cancelUpload({ uploadId: uploadId! }, { headers: routing }).catch(() => {});
                // Same server, same chunk size: the slices already deflating fit.
                await begin(true);
                probe.linkMeasured(sendMs / chunk.fileBytes);
                ready = { index, source: probe };
                compressed = true;
                progress = { ...progress, compressed };
                speed = new SpeedMeter();
                speed.add(0);
                restart = true;
                return "stop";
              }
              probe.close();
              sources.delete(probe);
              probe = undefined;
              compressor?.close();
              compressor = undefined;
            }
            const fileOffset = gzipMembers ? chunk.fileEnd : appended.committedOffset - base;
            speed.add(start + fileOffset);
            report({
              phase: "uploading",
              sentBytes: start + fileOffset,
              wireBytes: appended.committedOffset,
              rows: appended.rows,
              badRows: appended.badRows,
              fileIndex: index,
              bytesPerSec: speed.bytesPerSec(),
            });
          },
        });
        if (restart) {
          source.close();
          sources.delete(source);
          break;
        }
        source.close();
        sources.delete(source);
        fileStart += file.size;
      }
    }
    closeAll();
    report({ phase: "finishing", sentBytes: totalBytes });
    const finished = await withRetry(() =>
      client.finishUpload({ uploadId: uploadId! }, { signal, headers: routing })
    );
    const download = await withRetry(() =>
      client.downloadResult({ resultId: finished.resultId }, { signal })
    );
    const rows = Number(finished.rows);
    const badRows = Number(finished.badRows);
    const departments = Number(finished.departments);
    return {
      resultId: finished.resultId,
      downloadUrl: finished.downloadUrl,
      pagePath: finished.pagePath || `/r/${finished.resultId}`,
      rows,
      badRows,
      departments,
      elapsedSec: finished.elapsedSec,
      files: finished.files.length > 0
        ? finished.files.map((file) => ({
          name: file.name,
          rows: Number(file.rows),
          badRows: Number(file.badRows),
          departments: Number(file.departments),
        }))
        // A server from before several files: the one file has the whole result's counts.
        : [{ name: names[0], rows, badRows, departments }],
      badRowSamples: finished.badRowSamples.map((row) => ({
        line: Number(row.line),
        reason: row.reason,
        raw: row.raw,
        file: row.file || names[row.fileIndex] || "",
        fileIndex: row.fileIndex,
      })),
      bytes: totalBytes,
      wireBytes: wireOffset,
      compressed,
      totalSec: (performance.now() - startedAt) / 1000,
      resultCsv: download.data,
    };
  } catch (error) {
    closeAll();
    if (signal?.aborted) {
      // Best effort: free the server's state now rather than at idle expiry.
      if (uploadId !== undefined) {
        client.cancelUpload({ uploadId }, { headers: routing }).catch(() => {});
      }
      throw new UploadError("Upload cancelled", Code.Canceled, { cause: error });
    }
    throw toUploadError(error, progress);
  }
}

/**
 * The page's compressor: workers on as many cores as there are (at most 4), or the page's own
 * thread. Workers take a moment to load, so a page may create it ahead (when a file is chosen)
 * and hand it to {@linkcode uploadFile} with the `compressor` option.
 */
export function createPageCompressor(): MemberCompressor {
  const cores = Math.min(4, Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1));
  // A page hydrates from the island bundle, which is where `import.meta.url` points once built.
  const inPage = typeof document === "object";
  return (inPage ? workerCompressor(cores, import.meta.url) : undefined) ?? inlineCompressor();
}

/** One AppendUpload's data and the end of the file's bytes it carries. */
interface Chunk {
  data: Blob;
  fileEnd: number;
  /** How the data was made, for the scheduler's measurements. */
  kind: "slice" | "stored" | "deflated";
  fileBytes: number;
}

/** Where the upload loop takes its chunks from, in order. */
interface ChunkSource {
  /** The chunk that goes at wire offset `offset`, or undefined at the end. */
  next(offset: number): Promise<Chunk | undefined>;
  /** Tells how long the server took to acknowledge `chunk`. */
  sent(chunk: Chunk, ms: number): void;
  close(): void;
}

/** The file as it is, in slices (a short commit resumes from where the server stopped). */
class SliceSource implements ChunkSource {
  constructor(readonly file: Blob, readonly chunkBytes: number) {}

  next(offset: number): Promise<Chunk | undefined> {
    if (offset >= this.file.size) return Promise.resolve(undefined);
    const end = Math.min(offset + this.chunkBytes, this.file.size);
    return Promise.resolve({
      data: this.file.slice(offset, end),
      fileEnd: end,
      kind: "slice",
      fileBytes: end - offset,
    });
  }

  sent(): void {}
  close(): void {}
}

/** A slice being deflated, since `startedAt` (and until `finishedAt`). */
interface DeflatingPlan {
  kind: "deflating";
  startedAt: number;
  finishedAt?: number;
  member: Promise<Blob | undefined>;
  /** The member, once made (undefined if deflating failed). */
  result?: Blob;
}

/** Smoothing of the scheduler's running averages: recent chunks weigh most. */
const EWMA = 0.3;
const ewma = (previous: number | undefined, sample: number) =>
  previous === undefined ? sample : previous + EWMA * (sample - previous);

/**
 * The file as gzip members, one per slice, each deflated or stored, chosen to finish soonest.
 * Deflating costs the browser about 50 ms per MB and thread; on a slow link it pays four times
 * over, on a fast one it would be the bottleneck. So the compressors run ahead of the sender, and
 * a slice they cannot finish before the link would reach it is stored instead: slow links get
 * every slice deflated, and when the link is about as fast as the compressors, both stay busy.
 * Every member is built once and kept until it is acknowledged, so a retry repeats the same bytes.
 */
class GzipMemberSource implements ChunkSource {
  readonly #file: Blob;
  readonly #pieceBytes: number;
  readonly #chunkBytes: number;
  readonly #pieces: number;
  readonly #compressor: MemberCompressor;
  /** How slices beyond the sender were planned: being deflated, or to be stored. */
  readonly #plans = new Map<number, DeflatingPlan | { kind: "stored" }>();
  #sendIndex = 0;
  #planIndex = 0;
  #closed = false;
  #deflating = 0;
  /** Milliseconds per byte of the file for one compressor to deflate. */
  #deflateMsPerByte: number | undefined;
  /**
   * Milliseconds from request to acknowledgement, per byte of the file, for stored and deflated
   * chunks: a request also waits for the server to inflate and aggregate, which depends on the
   * file's bytes, so the two kinds are measured apart.
   */
  #storedMsPerByte: number | undefined;
  #deflatedMsPerByte: number | undefined;
  /** The same for deflated chunks per byte sent: the link is at least this fast. */
  #deflatedMsPerWireByte: number | undefined;
  /** Bytes of the file per byte deflated (about 3.8 for sales CSV). */
  #ratio = 3.5;
  /** The next slice's stored member, built ahead when it is not being deflated. */
  #storedAhead: { index: number; member: Promise<Blob> } | undefined;

  /** Starts deflating the first slices at once: the link is not measured yet. */
  constructor(file: Blob, chunkBytes: number, compressor: MemberCompressor) {
    this.#file = file;
    this.#chunkBytes = chunkBytes;
    this.#pieceBytes = pieceBytesFor(chunkBytes);
    this.#pieces = Math.ceil(file.size / this.#pieceBytes);
    this.#compressor = compressor;
    this.#plan();
  }

  /** Records the link's speed, measured on a chunk of the file sent as it is. */
  linkMeasured(msPerByte: number): void {
    this.#storedMsPerByte = msPerByte;
    this.#plan();
  }

  /**
   * Whether the first slice's deflating, started at construction, ends within `limitMs` of its
   * start; waits no longer than that.
   */
  async deflatesWithin(limitMs: number): Promise<boolean> {
    const first = this.#plans.get(0);
    if (first?.kind !== "deflating") return false;
    let timer: number | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, first.startedAt + limitMs - performance.now());
    });
    try {
      const member = await Promise.race([first.member, late]);
      return member !== undefined && first.finishedAt! - first.startedAt <= limitMs;
    } finally {
      clearTimeout(timer);
    }
  }

  #piece(index: number): Blob {
    const start = index * this.#pieceBytes;
    return this.#file.slice(start, Math.min(start + this.#pieceBytes, this.#file.size));
  }

  /** Look-ahead: enough for every compressor to be busy, few enough to bound held members. */
  get #window(): number {
    return Math.max(4, 2 * this.#compressor.parallelism);
  }

  /** Expected ms to send `bytes` of the file of `kind`, if the link was measured. */
  #sendMs(kind: "stored" | "deflated", bytes: number): number | undefined {
    if (this.#storedMsPerByte === undefined) return undefined;
    // Stored chunks may be rare: a link that got faster shows in the deflated ones.
    const stored = Math.min(this.#storedMsPerByte, this.#deflatedMsPerWireByte ?? Infinity);
    if (kind === "stored") return stored * bytes;
    return (this.#deflatedMsPerByte ?? stored / this.#ratio) * bytes;
  }

  /** Starts deflating slices ahead, storing those the link would reach before they are done. */
  #plan(): void {
    const now = performance.now();
    while (
      !this.#closed && this.#deflating < this.#compressor.parallelism &&
      this.#planIndex < this.#pieces &&
      this.#planIndex < this.#sendIndex + this.#window
    ) {
      const index = this.#planIndex++;
      const bytes = this.#piece(index).size;
      // When the link would reach this slice: after sending every slice before it.
      let arrivesIn: number | undefined = 0;
      for (let i = this.#sendIndex; i < index && arrivesIn !== undefined; i++) {
        const kind = this.#plans.get(i)?.kind === "stored" ? "stored" : "deflated";
        const ms = this.#sendMs(kind, this.#piece(i).size);
        arrivesIn = ms === undefined ? undefined : arrivesIn + ms;
      }
      const deflateMs = bytes * (this.#deflateMsPerByte ?? 1000 / DEFLATE_BYTES_PER_SEC);
      const storedMs = this.#sendMs("stored", bytes);
      const deflatedMs = this.#sendMs("deflated", bytes);
      // Stored, it is sent as soon as the link gets to it; deflated, once done as well.
      if (
        arrivesIn !== undefined && storedMs !== undefined && deflatedMs !== undefined &&
        arrivesIn + storedMs < Math.max(arrivesIn, deflateMs) + deflatedMs
      ) {
        this.#plans.set(index, { kind: "stored" });
        continue;
      }
      this.#deflating++;
      const member = this.#compressor.compress(this.#piece(index)).then(
        (member) => {
          this.#deflateMsPerByte = ewma(
            this.#deflateMsPerByte,
            (performance.now() - now) / bytes,
          );
          this.#ratio = ewma(this.#ratio, bytes / member.size);
          return member;
        },
        () => undefined,
      ).finally(() => {
        this.#deflating--;
        this.#plan();
      });
      const plan: DeflatingPlan = { kind: "deflating", startedAt: now, member };
      member.then((result) => {
        plan.finishedAt = performance.now();
        plan.result = result;
      });
      this.#plans.set(index, plan);
    }
  }

  async next(): Promise<Chunk | undefined> {
    const index = this.#sendIndex;
    if (index >= this.#pieces) return undefined;
    const piece = this.#piece(index);
    const fileEnd = index * this.#pieceBytes + piece.size;
    const plan = this.#plans.get(index);
    this.#plans.delete(index);
    let member: Blob | undefined;
    if (plan?.kind === "deflating") {
      // Wait for it unless storing it would be done sooner.
      const expectedMs = piece.size * (this.#deflateMsPerByte ?? 1000 / DEFLATE_BYTES_PER_SEC);
      const leftMs = Math.max(0, plan.startedAt + expectedMs - performance.now());
      const storedMs = this.#sendMs("stored", piece.size);
      const deflatedMs = this.#sendMs("deflated", piece.size);
      if (storedMs === undefined || deflatedMs === undefined || leftMs + deflatedMs < storedMs) {
        member = await plan.member;
      }
    }
    this.#sendIndex++;
    this.#plan();
    const storedAhead = this.#storedAhead;
    this.#storedAhead = undefined;
    // A slice that does not deflate (random bytes) goes stored: smaller, and fits the chunk size.
    let chunk: Chunk;
    if (member !== undefined && member.size < piece.size + storedOverhead(piece.size)) {
      chunk = this.#withReadyMembers({
        data: member,
        fileEnd,
        kind: "deflated",
        fileBytes: piece.size,
      });
    } else {
      const stored = storedAhead?.index === index
        ? await storedAhead.member
        : await storedGzipMember(piece);
      chunk = { data: stored, fileEnd, kind: "stored", fileBytes: piece.size };
    }
    // The next stored slice's CRC runs while this chunk is on its way.
    const following = this.#sendIndex;
    if (following < this.#pieces && this.#plans.get(following)?.kind !== "deflating") {
      this.#storedAhead = { index: following, member: storedGzipMember(this.#piece(following)) };
    }
    return chunk;
  }

  /**
   * `chunk` with the deflated members that follow it and are already made, up to the chunk size:
   * each request costs a round trip and the server's turn, whatever its size.
   */
  #withReadyMembers(chunk: Chunk): Chunk {
    const members = [chunk.data];
    let bytes = chunk.data.size;
    for (;;) {
      const plan = this.#plans.get(this.#sendIndex);
      if (plan?.kind !== "deflating" || plan.result === undefined) break;
      const piece = this.#piece(this.#sendIndex);
      if (
        bytes + plan.result.size > this.#chunkBytes ||
        plan.result.size >= piece.size + storedOverhead(piece.size)
      ) break;
      this.#plans.delete(this.#sendIndex);
      this.#sendIndex++;
      members.push(plan.result);
      bytes += plan.result.size;
      chunk = {
        ...chunk,
        fileEnd: chunk.fileEnd + piece.size,
        fileBytes: chunk.fileBytes + piece.size,
      };
    }
    if (members.length === 1) return chunk;
    this.#plan();
    return { ...chunk, data: new Blob(members) };
  }

  sent(chunk: Chunk, ms: number): void {
    if (chunk.kind === "stored") {
      this.#storedMsPerByte = ewma(this.#storedMsPerByte, ms / chunk.fileBytes);
    } else {
      this.#deflatedMsPerByte = ewma(this.#deflatedMsPerByte, ms / chunk.fileBytes);
      this.#deflatedMsPerWireByte = ewma(this.#deflatedMsPerWireByte, ms / chunk.data.size);
    }
  }

  close(): void {
    this.#closed = true;
    this.#compressor.close();
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
      // A proxy that sent a call to another replica than the upload's: not an expiry.
      if (/not on this replica/.test(detail)) {
        message = `The upload reached another server than the one holding it (${detail}).`;
        break;
      }
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
