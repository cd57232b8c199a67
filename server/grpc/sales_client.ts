/**
 * A grpc-js client for `sales.v1.SalesService` with promise methods and the service's plain types
 * (numbers, `AppError`). Used by `deno task upload`, the benchmarks and the integration tests.
 *
 * @example
 * ```ts ignore
 * import { SalesClient } from "./sales_client.ts";
 * const client = new SalesClient("localhost:50051");
 * const response = await client.uploadStream(chunks, "sales.csv");
 * client.close();
 * ```
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import type { UploadResponse } from "../service/types.ts";
import { fromGrpcError } from "./grpc_status.ts";
import {
  salesClientConstructor,
  type WireAppendUploadResponse,
  type WireUploadResponse,
} from "./sales_proto.ts";

/** Options of {@linkcode SalesClient}. */
export interface SalesClientOptions {
  /** Metadata sent with every call, such as `authorization`. @default {{}} */
  metadata?: Record<string, string>;
  /** Extra grpc-js channel options. @default {{}} */
  channelOptions?: grpc.ChannelOptions;
}

/** Options of {@linkcode SalesClient.uploadStream}. */
export interface UploadStreamOptions {
  /** Called after each chunk is handed to the connection, with the bytes handed over so far. */
  onProgress?: (bytesSent: number) => void;
}

// deno-lint-ignore no-explicit-any
type RawMethod = (...args: any[]) => any;

/** A connection to a SalesService server; call {@linkcode SalesClient.close} when done. */
export class SalesClient {
  /** The underlying grpc-js client, for callers that need the raw calls (tests). */
  readonly raw: grpc.Client & Record<string, RawMethod>;
  readonly #health: grpc.Client & Record<string, RawMethod>;
  readonly #metadata: grpc.Metadata;

  constructor(address: string, options: SalesClientOptions = {}) {
    const channelOptions: grpc.ChannelOptions = {
      // Results and uploads may be large; the server enforces its own limits.
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
      ...options.channelOptions,
    };
    const credentials = grpc.credentials.createInsecure();
    const Client = salesClientConstructor();
    this.raw = new Client(address, credentials, channelOptions) as SalesClient["raw"];
    const HealthClient = grpc.makeGenericClientConstructor(healthService, "Health");
    // Sharing the channel keeps health checks on the same connection as the calls they vouch for.
    this.#health = new HealthClient(address, credentials, {
      channelOverride: this.raw.getChannel(),
    }) as SalesClient["raw"];
    this.#metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) {
      this.#metadata.set(key, value);
    }
  }

  /** Streams `chunks` with `UploadCSVStream`, respecting flow control, and returns the result. */
  async uploadStream(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    filename: string,
    options: UploadStreamOptions = {},
  ): Promise<UploadResponse> {
    let call!: grpc.ClientWritableStream<unknown>;
    const response = new Promise<WireUploadResponse>((resolve, reject) => {
      call = this.raw.UploadCSVStream(
        this.#metadata,
        (error: Error | null, value: WireUploadResponse) => {
          if (error) reject(error);
          else resolve(value);
        },
      );
    });
    // Settles once the call is over, successfully or not: stop sending then.
    let over = false;
    const callOver = response.then(() => {}, () => {}).finally(() => over = true);
    try {
      let bytesSent = 0;
      let first = true;
      for await (const data of chunks) {
        if (over) break;
        const flowing = call.write({ data, filename: first ? filename : "" });
        first = false;
        bytesSent += data.length;
        options.onProgress?.(bytesSent);
        if (!flowing) {
          await Promise.race([new Promise((resolve) => call.once("drain", resolve)), callOver]);
        }
      }
      if (first) call.write({ data: new Uint8Array(0), filename });
      call.end();
    } catch (error) {
      call.cancel();
      await callOver;
      throw error;
    }
    try {
      return fromWireUploadResponse(await response);
    } catch (error) {
      throw fromGrpcError(error);
    }
  }

  /**
   * Uploads `chunks` the resumable way, as the browser does: StartUpload, one AppendUpload per
   * chunk, each after the previous one was acknowledged, then FinishUpload.
   */
  async uploadResumable(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    filename: string,
    size: number,
  ): Promise<UploadResponse> {
    const { uploadId } = await this.startUpload(filename, size);
    let offset = 0;
    for await (const chunk of chunks) {
      offset = (await this.appendUpload(uploadId, offset, chunk)).committedOffset;
    }
    return await this.finishUpload(uploadId);
  }

  /** Sends a whole file in one `UploadCSV` message. */
  async upload(data: Uint8Array, filename: string): Promise<UploadResponse> {
    return fromWireUploadResponse(
      await this.#unary<WireUploadResponse>("UploadCSV", { data, filename }),
    );
  }

  /** The bytes of a stored result. */
  async downloadResult(resultId: string): Promise<Uint8Array> {
    return (await this.#unary<{ data: Uint8Array }>("DownloadResult", { resultId })).data;
  }

  /** Starts a resumable chunked upload. */
  startUpload(filename: string, size: number): Promise<{ uploadId: string; chunkSize: number }> {
    return this.#unary("StartUpload", { filename, size: String(size) });
  }

  /** Sends the bytes at `offset` of a chunked upload. */
  async appendUpload(
    uploadId: string,
    offset: number,
    data: Uint8Array,
  ): Promise<{ committedOffset: number; rows: number; badRows: number }> {
    const progress = await this.#unary<WireAppendUploadResponse>("AppendUpload", {
      uploadId,
      offset: String(offset),
      data,
    });
    return {
      committedOffset: Number(progress.committedOffset),
      rows: Number(progress.rows),
      badRows: Number(progress.badRows),
    };
  }

  /** Ends a chunked upload and returns its result (the same one when repeated). */
  async finishUpload(uploadId: string): Promise<UploadResponse> {
    return fromWireUploadResponse(
      await this.#unary<WireUploadResponse>("FinishUpload", { uploadId }),
    );
  }

  /** Abandons a chunked upload. */
  async cancelUpload(uploadId: string): Promise<void> {
    await this.#unary("CancelUpload", { uploadId });
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

  #unary<T>(method: string, request: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      this.raw[method](request, this.#metadata, (error: Error | null, value: T) => {
        if (error) reject(fromGrpcError(error));
        else resolve(value);
      });
    });
  }
}

/** An `UploadResponse` from the wire in the service's plain types. */
export function fromWireUploadResponse(response: WireUploadResponse): UploadResponse {
  return {
    resultId: response.resultId,
    downloadUrl: response.downloadUrl,
    rows: Number(response.rows),
    badRows: Number(response.badRows),
    departments: Number(response.departments),
    elapsedSec: response.elapsedSec,
    badRowSamples: response.badRowSamples.map((sample) => ({
      line: Number(sample.line),
      reason: sample.reason,
      raw: sample.raw,
    })),
  };
}
