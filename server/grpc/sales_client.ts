/**
 * A grpc-js client for `sales.v1.SalesService` with promise methods and the service's plain types
 * (numbers, `AppError`). Used by `deno task upload`, the benchmarks and the integration tests. The
 * browser's gRPC-Web client is `GrpcWebSalesClient` in `browser/upload_client.ts`.
 *
 * @example
 * ```ts ignore
 * import { GrpcSalesClient } from "./sales_client.ts";
 * const client = new GrpcSalesClient("localhost:50051");
 * const csv = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\n";
 * const response = await client.uploadStream([new TextEncoder().encode(csv)], "sales.csv");
 * client.close();
 * ```
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import type { ResultDescription, UploadResponse } from "../service/types.ts";
import {
  fromAppendUploadResponseMessage,
  fromGetResultResponseMessage,
  fromUploadResponseMessage,
  type UploadResponseMessage,
} from "../service/wire.ts";
import type { SalesServiceClient } from "../../gen/proto_loader/sales/v1/SalesService.ts";
import type { AppendUploadResponse__Output } from "../../gen/proto_loader/sales/v1/AppendUploadResponse.ts";
import type { GetResultResponse__Output } from "../../gen/proto_loader/sales/v1/GetResultResponse.ts";
import type { UploadResponse__Output } from "../../gen/proto_loader/sales/v1/UploadResponse.ts";
import { appendChunks, type RetryOptions, withRetry } from "../../browser/resumable_upload.ts";
import { AppError, Status } from "../errors.ts";
import { fromGrpcError } from "./grpc_status.ts";
import { createSalesServiceClient } from "./sales_proto.ts";

/** Options of {@linkcode GrpcSalesClient}. */
export interface GrpcSalesClientOptions {
  /** Metadata sent with every call, such as `authorization`. @default {{}} */
  metadata?: Record<string, string>;
  /** Extra grpc-js channel options. @default {{}} */
  channelOptions?: grpc.ChannelOptions;
}

/**
 * The header that carries a chunked upload's routing key. Behind several replicas the proxy
 * hashes it (Envoy `hash_policy`, nginx `hash ... consistent`), so all four calls of one upload
 * reach the replica that holds it; a single server ignores it.
 */
export const ROUTING_HEADER = "x-upload-id";

/** A fresh routing key for one chunked upload: random, so uploads spread over the replicas. */
export function newRoutingKey(): string {
  return crypto.randomUUID();
}

/** One file of an upload of several: its name and its bytes as they are sent. */
export interface UploadSource {
  /** The file's name as the server keeps it (a later file's must not be empty). */
  name: string;
  /** The bytes to send, in order; read only when the file's turn comes. */
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** Options of {@linkcode GrpcSalesClient.uploadStream}. */
export interface UploadStreamOptions {
  /** Called after each chunk is handed to the connection, with the bytes handed over so far. */
  onProgress?: (bytesSent: number) => void;
  /** Called once, when the connection is up and the call has started sending. */
  onOpen?: () => void;
  /**
   * The most bytes of the upload handed to the connection but not yet written to its socket;
   * past it, the next chunk is taken only once the socket has caught up.
   * @default {MAX_UNSENT_BYTES}
   */
  maxUnsentBytes?: number;
}

/**
 * How far an upload may run ahead of its socket. Deno 2.9's `node:http2` completes a stream's
 * writes at once, whatever the peer's flow-control window, so grpc-js never reports backpressure
 * and a stalled server would let a sender buffer the whole file. 2 MiB on top of the server's
 * 4 MiB window keeps loopback uploads at full speed (1, 2 and 4 MiB measured alike).
 */
export const MAX_UNSENT_BYTES = 2 * 1024 * 1024;

// deno-lint-ignore no-explicit-any
type RawMethod = (...args: any[]) => any;

/**
 * A grpc-js connection to a SalesService server (the native gRPC side; the browser's gRPC-Web one
 * is `GrpcWebSalesClient`); call {@linkcode GrpcSalesClient.close} when done.
 */
export class GrpcSalesClient {
  /** The underlying grpc-js client, for callers that need the raw calls (tests). */
  readonly raw: grpc.Client & Record<string, RawMethod>;
  readonly #health: grpc.Client & Record<string, RawMethod>;
  readonly #metadata: grpc.Metadata;

  constructor(address: string, options: GrpcSalesClientOptions = {}) {
    const channelOptions: grpc.ChannelOptions = {
      // Results and uploads may be large; the server enforces its own limits.
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
      ...options.channelOptions,
    };
    const credentials = grpc.credentials.createInsecure();
    const client: SalesServiceClient = createSalesServiceClient(
      address,
      credentials,
      channelOptions,
    );
    this.raw = client as unknown as GrpcSalesClient["raw"];
    const HealthClient = grpc.makeGenericClientConstructor(healthService, "Health");
    // Sharing the channel keeps health checks on the same connection as the calls they vouch for.
    this.#health = new HealthClient(address, credentials, {
      channelOverride: this.raw.getChannel(),
    }) as GrpcSalesClient["raw"];
    this.#metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) {
      this.#metadata.set(key, value);
    }
  }

  /** Streams `chunks` with `UploadCSVStream`, respecting flow control, and returns the result. */
  uploadStream(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    filename: string,
    options: UploadStreamOptions = {},
  ): Promise<UploadResponse> {
    return this.uploadFilesStream([{ name: filename, chunks }], options);
  }

  /**
   * Streams several files into one result with `UploadCSVStream`: each file's name travels on its
   * first chunk (an empty file is one empty chunk with its name), which tells the server where
   * one file ends and the next starts. `onProgress` counts the bytes of all files.
   */
  async uploadFilesStream(
    files: readonly UploadSource[],
    options: UploadStreamOptions = {},
  ): Promise<UploadResponse> {
    checkLaterNames(files);
    let call!: grpc.ClientWritableStream<unknown>;
    const response = new Promise<UploadResponseMessage>((resolve, reject) => {
      call = this.raw.UploadCSVStream(
        this.#metadata,
        (error: Error | null, value: UploadResponse__Output) => {
          if (error) reject(error);
          else resolve(value);
        },
      );
    });
    // Settles once the call is over, successfully or not: stop sending then.
    let over = false;
    const callOver = response.then(() => {}, () => {}).finally(() => over = true);
    const opened = options.onOpen === undefined
      ? undefined
      : this.#whenReady(callOver).then((ready) => ready && !over && options.onOpen?.());
    const socket = new SocketProgress(call, options.maxUnsentBytes ?? MAX_UNSENT_BYTES);
    try {
      let bytesSent = 0;
      for (const [index, file] of files.entries()) {
        let first = true;
        for await (const data of file.chunks) {
          if (over) break;
          const flowing = call.write({ data, filename: first ? file.name : "" });
          first = false;
          bytesSent += data.length;
          options.onProgress?.(bytesSent);
          if (!flowing) {
            await Promise.race([new Promise((resolve) => call.once("drain", resolve)), callOver]);
          }
          await socket.caughtUp(data.length, () => over);
        }
        // An empty file still starts with its name; an empty first file of one names the upload.
        if (first && !over && (index > 0 || files.length === 1 || file.name !== "")) {
          call.write({ data: new Uint8Array(0), filename: file.name });
        }
      }
      call.end();
      await opened;
    } catch (error) {
      call.cancel();
      await callOver;
      throw error;
    }
    try {
      return fromUploadResponseMessage(await response);
    } catch (error) {
      throw fromGrpcError(error);
    }
  }

  /**
   * Uploads `chunks` the resumable way, as the browser does: StartUpload, one AppendUpload per
   * chunk, each after the previous one was acknowledged, then FinishUpload.
   */
  uploadResumable(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    filename: string,
    size: number,
    options: ResumableUploadOptions = {},
  ): Promise<UploadResponse> {
    return this.uploadFilesResumable([{ name: filename, chunks }], size, options);
  }

  /**
   * Uploads several files into one result the resumable way: StartUpload names them all, each
   * AppendUpload says which file its bytes belong to (offsets run on across files), then
   * FinishUpload. `size` is the bytes of all files, 0 when unknown.
   */
  async uploadFilesResumable(
    files: readonly UploadSource[],
    size: number,
    options: ResumableUploadOptions = {},
  ): Promise<UploadResponse> {
    // One key for the four calls: behind a hashing proxy they all reach the same replica.
    const routingKey = options.routingKey ?? newRoutingKey();
    const retry: RetryOptions = { isRetryable: isTransient, ...options.retry };
    const names = files.map((file) => file.name);
    // One file travels as it always did, without `filenames`.
    const { uploadId } = await withRetry(
      () => this.startUpload(names[0] ?? "", size, routingKey, names.length > 1 ? names : []),
      retry,
    );
    // A stream cannot go back: each chunk is sent once, and must be committed whole.
    const pending = (async function* () {
      for (const [fileIndex, file] of files.entries()) {
        for await (const data of file.chunks) yield { data, fileIndex };
      }
    })();
    await appendChunks<{ data: Uint8Array; fileIndex: number }>({
      next: async () => {
        const taken = await pending.next();
        return taken.done ? undefined : taken.value;
      },
      sizeOf: (chunk) => chunk.data.length,
      append: (offset, chunk) =>
        this.appendUpload(uploadId, offset, chunk.data, routingKey, chunk.fileIndex),
      retry,
      onAppended: (_chunk, progress) => options.onProgress?.(progress.committedOffset),
    });
    return await withRetry(() => this.finishUpload(uploadId, routingKey), retry);
  }

  /** Sends a whole file in one `UploadCSV` message. */
  async upload(data: Uint8Array, filename: string): Promise<UploadResponse> {
    return fromUploadResponseMessage(
      await this.#unary<UploadResponse__Output>("UploadCSV", { data, filename }),
    );
  }

  /** The bytes of a stored result. */
  async downloadResult(resultId: string): Promise<Uint8Array> {
    return (await this.#unary<{ data: Uint8Array }>("DownloadResult", { resultId })).data;
  }

  /**
   * Describes a stored result (counts, the uploaded file's name) with a fresh `downloadUrl`,
   * signed anew when the server signs URLs: the way to renew a link that expired.
   */
  async getResult(resultId: string): Promise<ResultDescription> {
    return fromGetResultResponseMessage(
      await this.#unary<GetResultResponse__Output>("GetResult", { resultId }),
    );
  }

  /**
   * Starts a resumable chunked upload. Pass the same `routingKey` (sent as
   * {@linkcode ROUTING_HEADER}) to the upload's other calls when a proxy spreads calls over
   * replicas.
   */
  startUpload(
    filename: string,
    size: number,
    routingKey?: string,
    filenames: readonly string[] = [],
  ): Promise<{ uploadId: string; chunkSize: number }> {
    return this.#unary("StartUpload", { filename, size: String(size), filenames }, routingKey);
  }

  /** Sends the bytes at `offset` of a chunked upload, which belong to file `fileIndex`. */
  async appendUpload(
    uploadId: string,
    offset: number,
    data: Uint8Array,
    routingKey?: string,
    fileIndex = 0,
  ): Promise<{ committedOffset: number; rows: number; badRows: number }> {
    return fromAppendUploadResponseMessage(
      await this.#unary<AppendUploadResponse__Output>("AppendUpload", {
        uploadId,
        offset: String(offset),
        data,
        fileIndex,
      }, routingKey),
    );
  }

  /** Ends a chunked upload and returns its result (the same one when repeated). */
  async finishUpload(uploadId: string, routingKey?: string): Promise<UploadResponse> {
    return fromUploadResponseMessage(
      await this.#unary<UploadResponse__Output>("FinishUpload", { uploadId }, routingKey),
    );
  }

  /** Abandons a chunked upload. */
  async cancelUpload(uploadId: string, routingKey?: string): Promise<void> {
    await this.#unary("CancelUpload", { uploadId }, routingKey);
  }

  /** Resolves true once the channel is connected, or false if `until` settles first. */
  #whenReady(until: Promise<void>): Promise<boolean> {
    const channel = this.raw.getChannel();
    let settled = false;
    return new Promise((resolve) => {
      const check = () => {
        if (settled) return resolve(false);
        const state = channel.getConnectivityState(true);
        if (state === grpc.connectivityState.READY) return resolve(true);
        if (state === grpc.connectivityState.SHUTDOWN) return resolve(false);
        // No deadline (no timer): the next change of state, or the channel's close, calls back.
        channel.watchConnectivityState(state, Infinity, check);
      };
      until.then(() => {
        settled = true;
        resolve(false);
      });
      check();
    });
  }

  /** The serving status from `grpc.health.v1.Health/Check` (`""` is the whole server). */
  checkHealth(service = ""): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#health.Check({ service }, (error: Error | null, value: { status: string }) => {
        if (error) reject(fromGrpcError(error));
        else resolve(value.status);
      });
    });
  }

  /** Closes the connection. */
  close(): void {
    this.#health.close();
    this.raw.close();
  }

  #unary<T>(method: string, request: unknown, routingKey?: string): Promise<T> {
    let metadata = this.#metadata;
    if (routingKey !== undefined) {
      metadata = this.#metadata.clone();
      metadata.set(ROUTING_HEADER, routingKey);
    }
    return new Promise((resolve, reject) => {
      this.raw[method](request, metadata, (error: Error | null, value: T) => {
        if (error) reject(fromGrpcError(error));
        else resolve(value);
      });
    });
  }
}

/** The part of a `node:http2` stream that tells how far the connection's socket has written. */
interface Http2StreamLike {
  session?: { socket?: { bytesWritten?: number } } | null;
}

/**
 * Holds an upload back while its bytes wait in the HTTP/2 session instead of the socket: counts
 * the bytes handed to the call against the growth of the socket's `bytesWritten` since the
 * socket was found. Other calls on the same connection only make the estimate lower.
 */
class SocketProgress {
  #stream: Http2StreamLike | undefined;
  #handed = 0;
  #writtenAtStart = 0;

  constructor(readonly call: unknown, readonly maxUnsentBytes: number) {}

  /** Counts `bytes` as handed over, then waits while too many are unsent or until `over()`. */
  async caughtUp(bytes: number, over: () => boolean): Promise<void> {
    if (this.#stream === undefined) {
      // Until the connection is up the call holds its messages and grpc-js's own backpressure
      // works; the bytes handed before the socket is found are not counted.
      this.#stream = findHttp2Stream(this.call);
      this.#writtenAtStart = this.#written();
      return;
    }
    this.#handed += bytes;
    let pause = 1;
    while (this.#handed - (this.#written() - this.#writtenAtStart) > this.maxUnsentBytes) {
      if (over()) return;
      // No event announces that the socket wrote more: poll, backing off to 16 ms.
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 16);
    }
  }

  #written(): number {
    return this.#stream?.session?.socket?.bytesWritten ?? Infinity;
  }
}

/**
 * The `node:http2` stream under a grpc-js call, found through grpc-js's call layers
 * (interceptors, resolving, retrying, load-balancing, subchannel call), or undefined while the
 * call has not reached a connection or if grpc-js arranges its layers otherwise.
 */
function findHttp2Stream(call: unknown): Http2StreamLike | undefined {
  let layers: unknown[] = [call];
  for (let depth = 0; depth < 10 && layers.length > 0; depth++) {
    const next: unknown[] = [];
    for (const layer of layers) {
      if (typeof layer !== "object" || layer === null) continue;
      const fields = layer as Record<string, unknown>;
      const stream = fields.http2Stream as Http2StreamLike | undefined;
      if (typeof stream?.session?.socket?.bytesWritten === "number") return stream;
      next.push(fields.call, fields.nextCall, fields.child);
      if (Array.isArray(fields.underlyingCalls)) {
        for (const underlying of fields.underlyingCalls) next.push(underlying?.call);
      }
    }
    layers = next;
  }
  return undefined;
}

/** Options of {@linkcode GrpcSalesClient.uploadResumable}. */
export interface ResumableUploadOptions extends UploadStreamOptions {
  /** The upload's routing key, sent on all four calls. @default {a fresh one} */
  routingKey?: string;
  /** Retries of each call, as the page does them. @default {no retry} */
  retry?: RetryOptions;
}

/**
 * Refuses a later file without a name before anything is sent: on the stream, its bytes would
 * run on into the file before it.
 */
function checkLaterNames(files: readonly UploadSource[]): void {
  const unnamed = files.findIndex((file, index) => index > 0 && file.name === "");
  if (unnamed > 0) {
    throw new AppError(
      Status.INVALID_ARGUMENT,
      `File ${unnamed + 1} of the upload has no name: every file but the first needs one`,
    );
  }
}

/** Failures worth retrying at the same offset: the call or its reply may simply have been lost. */
function isTransient(error: unknown): boolean {
  return error instanceof AppError && (
    error.code === Status.UNAVAILABLE || error.code === Status.UNKNOWN ||
    error.code === Status.DEADLINE_EXCEEDED || error.code === Status.ABORTED
  );
}
