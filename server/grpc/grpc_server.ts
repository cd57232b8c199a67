/**
 * Serves {@linkcode SalesService} over native gRPC with grpc-js, plus the standard
 * `grpc.health.v1.Health` service and server reflection (`reflection.ts`). This folder is the only
 * code that knows grpc-js: handlers turn wire messages into the service's plain types (uint64
 * strings into numbers and back) and errors into statuses through {@linkcode toGrpcStatus}.
 *
 * Every call first passes the call guard (`call_guard.ts`): the token is checked and each request
 * message's room in the memory budget is reserved before grpc-js reads the message. Connections
 * are bounded with grpc-js's own options: `MAX_CONCURRENT_STREAMS` is advertised, keepalive pings
 * find dead peers, and a connection with no call for `CONNECTION_IDLE_TIMEOUT_SEC` is closed.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { HealthImplementation, protoPath as HEALTH_PROTO_PATH } from "grpc-health-check";
import { isIP } from "node:net";
import { constants as http2Constants } from "node:http2";
import { AppError, Status } from "../errors.ts";
import { createTokenCheck } from "../service/auth.ts";
import type { BufferBudget } from "../service/buffer_budget.ts";
import { REQUEST_ID_HEADER, resolveRequestId } from "../service/request_id.ts";
import type { CallContext, SalesService, UploadChunk, UploadResponse } from "../service/types.ts";
import { createCallGuard, markUndecodable } from "./call_guard.ts";
import { type ErrorLogger, toGrpcStatus } from "./grpc_status.ts";
import { addReflection } from "./reflection.ts";
import {
  SALES_PROTO_PATH,
  SALES_SERVICE_NAME,
  salesServiceDefinition,
  type WireAppendUploadResponse,
  type WireGetResultResponse,
  type WireUploadChunk,
  type WireUploadResponse,
} from "./sales_proto.ts";

/** Options of {@linkcode startGrpcServer}. */
export interface GrpcServerOptions {
  /** Interface to bind. @default {"127.0.0.1"} */
  host?: string;
  /** Port to bind; 0 picks a free one. @default {50051} */
  port?: number;
  /** Largest message received; bigger ones fail with `RESOURCE_EXHAUSTED`. @default {67108864} */
  maxMessageBytes?: number;
  /**
   * Bearer token every SalesService call needs (`SALES_API_TOKEN`), checked when the metadata
   * arrives, before any message is read. @default {undefined} (off)
   */
  apiToken?: string;
  /** Bytes of request messages being received at once, shared with gRPC-Web. @default {no limit} */
  budget?: BufferBudget;
  /** HTTP/2 streams one connection may have open at once. @default {256} */
  maxConcurrentStreams?: number;
  /** Seconds a connection may stay open with no call before it is closed. @default {300} */
  connectionIdleTimeoutSec?: number;
  /**
   * Milliseconds between keepalive pings on a connection; a ping unanswered for
   * {@linkcode KEEPALIVE_TIMEOUT_MS} closes it. @default {60000}
   */
  keepaliveTimeMs?: number;
  /** Where the causes of internal errors are logged. @default {console.error} */
  logError?: ErrorLogger;
  /**
   * Whether to use larger HTTP/2 frames and windows than Node's defaults (see
   * `UPLOAD_HTTP2_SETTINGS`); `false` is for tests that need the runtime's defaults.
   * @default {true}
   */
  tuneHttp2?: boolean;
}

/** A running gRPC server. */
export interface GrpcServerHandle {
  /** The port actually bound. */
  readonly port: number;
  /** Stops accepting calls, lets calls in flight finish for up to `graceMs`, then cuts the rest. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Binds a grpc-js server for `service` and starts serving. */
export async function startGrpcServer(
  service: SalesService,
  options: GrpcServerOptions = {},
): Promise<GrpcServerHandle> {
  const logError = options.logError ?? ((message, error) => console.error(message, error));
  const maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const apiToken = options.apiToken === "" ? undefined : options.apiToken;
  const guard = createCallGuard({
    tokenCheck: apiToken === undefined ? undefined : createTokenCheck(apiToken),
    // Health checks stay open, for load balancers and orchestrators that hold no token.
    needsToken: (path) => path.startsWith(`/${SALES_SERVICE_NAME}/`),
    budget: options.budget,
    maxMessageBytes,
    logError,
  });
  const server = new grpc.Server({
    "grpc.max_receive_message_length": maxMessageBytes,
    // Results can be large; the receive limit is what protects the server.
    "grpc.max_send_message_length": -1,
    "grpc.max_concurrent_streams": options.maxConcurrentStreams ?? 256,
    "grpc.keepalive_time_ms": options.keepaliveTimeMs ?? 60_000,
    "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
    // grpc-js starts this timer when the connection is accepted, so it also closes connections
    // that never open a stream, such as one that sent only the HTTP/2 preface.
    "grpc.max_connection_idle_ms": Math.max(
      1,
      Math.round((options.connectionIdleTimeoutSec ?? 300) * 1000),
    ),
    interceptors: [guard],
  });
  /** Calls not yet answered, so a shutdown whose grace runs out can answer them with a reason. */
  const unanswered = new Set<(status: Partial<grpc.StatusObject>) => void>();
  server.addService(
    markUndecodable(salesServiceDefinition()),
    salesHandlers(service, logError, unanswered),
  );
  const health = new HealthImplementation({ "": "SERVING", [SALES_SERVICE_NAME]: "SERVING" });
  // The health and reflection services register themselves; their definitions get the same
  // decoding as ours.
  const markedServer = {
    addService: (definition, implementation) =>
      server.addService(markUndecodable(definition), implementation),
  } as Pick<grpc.Server, "addService"> as grpc.Server;
  health.addToServer(markedServer);
  // Open without the token, like health: it describes the API, which the .proto publishes anyway.
  addReflection(markedServer, [SALES_PROTO_PATH, HEALTH_PROTO_PATH]);

  const host = options.host ?? "127.0.0.1";
  const address = `${host.includes(":") ? `[${host}]` : host}:${options.port ?? 50051}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
      if (error) {
        reject(
          new AppError(
            Status.UNAVAILABLE,
            `Cannot listen for gRPC on ${address}: ${error.message}`,
            {
              cause: error,
            },
          ),
        );
      } else {
        resolve(boundPort);
      }
    });
  });

  if (options.tuneHttp2 ?? true) tuneHttp2Sessions(server);

  let stopped: Promise<void> | undefined;
  return {
    port,
    shutdown(graceMs = 10_000) {
      stopped ??= new Promise<void>((resolve) => {
        health.setStatus("", "NOT_SERVING");
        health.setStatus(SALES_SERVICE_NAME, "NOT_SERVING");
        let forceTimer: ReturnType<typeof setTimeout> | undefined;
        const done = () => {
          clearTimeout(graceTimer);
          clearTimeout(forceTimer);
          resolve();
        };
        const graceTimer = setTimeout(() => {
          // A bare reset reaches the client as CANCELLED ("Call cancelled"), as if it had given up
          // itself: say why instead, then give the answers a moment to leave before cutting.
          for (const answer of unanswered) answer(SHUTTING_DOWN);
          forceTimer = setTimeout(() => {
            server.forceShutdown();
            done();
          }, SHUTDOWN_FLUSH_MS);
        }, graceMs);
        server.tryShutdown(done);
      });
      return stopped;
    },
  };
}

type Callback<T> = grpc.sendUnaryData<T>;

/** How long a keepalive ping may go unanswered before the connection is closed, in milliseconds. */
export const KEEPALIVE_TIMEOUT_MS = 20_000;

// grpc-js answers a request whose content type is not gRPC with
// `:status: http2.constants.HTTP_STATUS_UNSUPPORTED_MEDIA_TYPE`, read when the request arrives.
// Deno 2.9.3's `node:http2` constants have only ten of Node's HTTP_STATUS_* values and lack this
// one, so the answer went out as 200 with no grpc-status; denoland/deno#32611 filled the same kind
// of gap for the HTTP2_HEADER_* constants grpc-js needs. Node's value (415) fills it in.
(http2Constants as unknown as Record<string, number | undefined>)
  .HTTP_STATUS_UNSUPPORTED_MEDIA_TYPE ??= 415;

/** The status of calls still running when a shutdown's grace period ends. */
const SHUTTING_DOWN: Partial<grpc.StatusObject> = {
  code: grpc.status.UNAVAILABLE,
  details: "The server is shutting down: try again in a moment",
};
/** The status given to a call whose client is gone; grpc-js drops it. */
const CALL_ENDED_STATUS: Partial<grpc.StatusObject> = {
  code: grpc.status.CANCELLED,
  details: "The call ended",
};
/** How long those answers get to reach their clients before the connections are cut. */
const SHUTDOWN_FLUSH_MS = 100;

/** grpc-js handlers for every SalesService method. */
function salesHandlers(
  service: SalesService,
  logError: ErrorLogger,
  unanswered: Set<(status: Partial<grpc.StatusObject>) => void>,
): grpc.UntypedServiceImplementation {
  /**
   * Answers a unary or client-streaming call with the service's promise, mapping errors once. Until
   * then the call is in `unanswered`, where a shutdown may answer it first; the later answer is dropped.
   */
  const respond = <T>(
    call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>,
    method: string,
    callback: Callback<T>,
    work: (ctx: CallContext) => Promise<T>,
  ) => {
    const ctx = contextOf(call);
    let answered = false;
    const answer: Callback<T> = (error, value) => {
      if (answered) return;
      answered = true;
      unanswered.delete(cut);
      // The request id goes out in the response headers, whatever the outcome.
      if (!call.cancelled) {
        const metadata = new grpc.Metadata();
        metadata.set(REQUEST_ID_HEADER, ctx.requestId!);
        call.sendMetadata(metadata);
      }
      callback(error, value);
    };
    const cut = (status: Partial<grpc.StatusObject>) => answer(status);
    unanswered.add(cut);
    Promise.try(() => work(ctx)).then(
      (response) => answer(null, response),
      // Once the call has ended (cancelled, or refused by the call guard), its request stream fails
      // with whatever error the runtime gives; nobody hears the answer, so it is not an error.
      (error) => answer(call.cancelled ? CALL_ENDED_STATUS : toGrpcStatus(error, method, logError)),
    );
  };

  return {
    UploadCSV(
      call: grpc.ServerUnaryCall<WireUploadChunk, WireUploadResponse>,
      callback: Callback<WireUploadResponse>,
    ) {
      respond(call, "UploadCSV", callback, async (ctx) => {
        const response = await service.uploadCsv(
          { data: plainBytes(call.request.data), filename: call.request.filename },
          ctx,
        );
        return toWireUploadResponse(response);
      });
    },

    UploadCSVStream(
      call: grpc.ServerReadableStream<WireUploadChunk, WireUploadResponse>,
      callback: Callback<WireUploadResponse>,
    ) {
      respond(call, "UploadCSVStream", callback, async (ctx) => {
        return toWireUploadResponse(await service.uploadCsvStream(chunksOf(call), ctx));
      });
    },

    DownloadResult(
      call: grpc.ServerUnaryCall<{ resultId: string }, { data: Uint8Array }>,
      callback: Callback<{ data: Uint8Array }>,
    ) {
      respond(
        call,
        "DownloadResult",
        callback,
        (ctx) => service.downloadResult({ resultId: call.request.resultId }, ctx),
      );
    },

    GetResult(
      call: grpc.ServerUnaryCall<{ resultId: string }, WireGetResultResponse>,
      callback: Callback<WireGetResultResponse>,
    ) {
      respond(call, "GetResult", callback, async (ctx) => {
        const result = await service.getResult({ resultId: call.request.resultId }, ctx);
        return {
          ...result,
          rows: String(result.rows),
          badRows: String(result.badRows),
          departments: String(result.departments),
          badRowSamples: result.badRowSamples.map((sample) => ({
            ...sample,
            line: String(sample.line),
          })),
          createdAt: result.createdAt.toISOString(),
          sizeBytes: String(result.sizeBytes),
        };
      });
    },

    StartUpload(
      call: grpc.ServerUnaryCall<
        { filename: string; size: string },
        { uploadId: string; chunkSize: number }
      >,
      callback: Callback<{ uploadId: string; chunkSize: number }>,
    ) {
      respond(call, "StartUpload", callback, (ctx) =>
        service.startUpload(
          { filename: call.request.filename, size: toSafeNumber(call.request.size, "size") },
          ctx,
        ));
    },

    AppendUpload(
      call: grpc.ServerUnaryCall<
        { uploadId: string; offset: string; data: Uint8Array },
        WireAppendUploadResponse
      >,
      callback: Callback<WireAppendUploadResponse>,
    ) {
      respond(call, "AppendUpload", callback, async (ctx) => {
        const progress = await service.appendUpload(
          {
            uploadId: call.request.uploadId,
            offset: toSafeNumber(call.request.offset, "offset"),
            data: plainBytes(call.request.data),
          },
          ctx,
        );
        return {
          committedOffset: String(progress.committedOffset),
          rows: String(progress.rows),
          badRows: String(progress.badRows),
        };
      });
    },

    FinishUpload(
      call: grpc.ServerUnaryCall<{ uploadId: string }, WireUploadResponse>,
      callback: Callback<WireUploadResponse>,
    ) {
      respond(
        call,
        "FinishUpload",
        callback,
        async (ctx) =>
          toWireUploadResponse(
            await service.finishUpload({ uploadId: call.request.uploadId }, ctx),
          ),
      );
    },

    CancelUpload(
      call: grpc.ServerUnaryCall<{ uploadId: string }, Record<never, never>>,
      callback: Callback<Record<never, never>>,
    ) {
      respond(
        call,
        "CancelUpload",
        callback,
        (ctx) => service.cancelUpload({ uploadId: call.request.uploadId }, ctx),
      );
    },
  };
}

/**
 * grpc-js emits "cancelled" at the end of every call, not only on cancellation; a ready-made reason
 * spares the DOMException (and its stack trace) `abort()` would build each time.
 */
const CALL_ENDED = new AppError(Status.CANCELLED, "The call ended");

/** The transport-free view of a call: cancellation, metadata, and its resolved request id. */
function contextOf(
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>,
): CallContext {
  const controller = new AbortController();
  if (call.cancelled) controller.abort(CALL_ENDED);
  (call as grpc.ServerUnaryCall<unknown, unknown>).once(
    "cancelled",
    () => controller.abort(CALL_ENDED),
  );
  return {
    signal: controller.signal,
    header(name) {
      const value = call.metadata.get(name.toLowerCase())[0];
      return value === undefined ? undefined : String(value);
    },
    peer: peerOf(call.getPeer()),
    transport: "grpc",
    requestId: resolveRequestId(call.metadata.get(REQUEST_ID_HEADER)[0]?.toString()),
  };
}

/**
 * grpc-js's peer (`address:port`, or `unknown`) as `CallContext.peer` has it: an IPv6 address goes
 * in brackets (`[::1]:5678`), so that the port can be told from the address.
 */
export function peerOf(peer: string): string | undefined {
  if (peer === "" || peer === "unknown") return undefined;
  const match = /^(.*):(\d+)$/.exec(peer);
  if (match !== null && isIP(match[1]) === 6) return `[${match[1]}]:${match[2]}`;
  return peer;
}

/** The messages of a client stream. grpc-js destroys the stream on cancel, which ends this with an error. */
async function* chunksOf(
  call: grpc.ServerReadableStream<WireUploadChunk, unknown>,
): AsyncIterable<UploadChunk> {
  for await (const message of call as AsyncIterable<WireUploadChunk>) {
    yield { data: plainBytes(message.data), filename: message.filename };
  }
}

/**
 * The bytes of a wire `Buffer` as a plain `Uint8Array`, without copying. Deno's `Buffer` overrides
 * methods such as `lastIndexOf` and `subarray` with slow JavaScript versions; the service and the
 * aggregator should get the engine's own.
 */
function plainBytes(data: Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function toWireUploadResponse(response: UploadResponse): WireUploadResponse {
  return {
    resultId: response.resultId,
    downloadUrl: response.downloadUrl,
    rows: String(response.rows),
    badRows: String(response.badRows),
    departments: String(response.departments),
    elapsedSec: response.elapsedSec,
    badRowSamples: response.badRowSamples.map((sample) => ({
      line: String(sample.line),
      reason: sample.reason,
      raw: sample.raw,
    })),
  };
}

/** A uint64 from the wire as a number; values past 2^53 - 1 cannot be offsets or sizes here. */
function toSafeNumber(value: string | number, field: string): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 0) {
    throw new AppError(Status.INVALID_ARGUMENT, `${field} ${value} is larger than 2^53 - 1`);
  }
  return number;
}

/**
 * HTTP/2 settings for fast uploads. Node's defaults (64 KiB windows, 16 KiB frames) make a client
 * stream pay one socket write per 16 KiB and the server one WINDOW_UPDATE per few frames; on this
 * runtime that capped uploads near 140 MB/s. 256 KiB frames with a 4 MiB window measured 210-250
 * MB/s (a 2 MiB window ~200). The window bounds what each stream can have buffered in the server,
 * so many concurrent uploads cost up to 4 MiB each.
 */
const UPLOAD_HTTP2_SETTINGS = { initialWindowSize: 4 * 1024 * 1024, maxFrameSize: 256 * 1024 };

/**
 * grpc-js offers no option for these settings, so they are applied to each new session of the
 * servers it created. `http2Servers` is private to grpc-js (pinned in deno.json); if it changes,
 * this does nothing and only speed is lost, which the upload benchmark shows.
 */
function tuneHttp2Sessions(server: grpc.Server): void {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map)) return;
  for (const http2Server of http2Servers.keys()) {
    http2Server.on?.("session", (session: Http2SessionLike) => {
      session.settings(UPLOAD_HTTP2_SETTINGS);
      session.setLocalWindowSize?.(UPLOAD_HTTP2_SETTINGS.initialWindowSize);
    });
  }
}

/** The part of `node:http2`'s ServerHttp2Session used here. */
interface Http2SessionLike {
  settings(settings: Record<string, number>): void;
  setLocalWindowSize?(size: number): void;
}
