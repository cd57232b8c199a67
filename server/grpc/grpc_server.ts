/**
 * Serves {@linkcode SalesService} over native gRPC with grpc-js, plus the standard
 * `grpc.health.v1.Health` service and server reflection (`reflection.ts`). This folder is the only
 * code that knows grpc-js. One generic adapter builds every handler from the wire mapping that
 * gRPC-Web shares (`service/wire.ts`, uint64 as decimal strings here), and passes failures on
 * unchanged; the error interceptor (`grpc_status.ts`) maps them to statuses and logs the
 * unexpected ones, once for every method.
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
import type { CallContext, SalesService } from "../service/types.ts";
import { consoleLogger, type Logger } from "../logger.ts";
import { createWireMethods, uint64AsString } from "../service/wire.ts";
import type { SalesServiceHandlers } from "../../gen/proto_loader/sales/v1/SalesService.ts";
import type { UploadChunk__Output } from "../../gen/proto_loader/sales/v1/UploadChunk.ts";
import { createCallGuard, markUndecodable } from "./call_guard.ts";
import { createErrorInterceptor, FAILED_CALL, FailedCallTrailer } from "./grpc_status.ts";
import { addReflection } from "./reflection.ts";
import { SALES_PROTO_PATH, SALES_SERVICE_NAME, salesServiceDefinition } from "./sales_proto.ts";

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
  /** Where the causes of internal errors are logged. @default {consoleLogger} */
  logger?: Logger;
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
  const logger = options.logger ?? consoleLogger;
  const maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const apiToken = options.apiToken === "" ? undefined : options.apiToken;
  const guard = createCallGuard({
    tokenCheck: apiToken === undefined ? undefined : createTokenCheck(apiToken),
    // Health checks stay open, for load balancers and orchestrators that hold no token.
    needsToken: (path) => path.startsWith(`/${SALES_SERVICE_NAME}/`),
    budget: options.budget,
    maxMessageBytes,
    logger,
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
    // The guard first: it needs grpc-js's base call. The error interceptor is outermost, so it
    // sees each status as the handler gave it.
    interceptors: [guard, createErrorInterceptor(logger)],
  });
  /** Calls not yet answered, so a shutdown whose grace runs out can answer them with a reason. */
  const unanswered = new Set<(status: Partial<grpc.StatusObject>) => void>();
  server.addService(
    markUndecodable(salesServiceDefinition()),
    salesHandlers(service, unanswered),
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

/** grpc-js handlers for every SalesService method, built from the one wire mapping. */
function salesHandlers(
  service: SalesService,
  unanswered: Set<(status: Partial<grpc.StatusObject>) => void>,
): SalesServiceHandlers {
  const methods = createWireMethods(service, uint64AsString);
  const unary = <Req, Res>(
    run: (request: Req, ctx: CallContext) => Promise<Res>,
  ): grpc.handleUnaryCall<Req, Res> =>
  (call, callback) => respond(call, callback, unanswered, (ctx) => run(call.request, ctx));
  return {
    UploadCSV: unary(methods.UploadCSV),
    UploadCSVStream: (call, callback) =>
      respond(
        call,
        callback,
        unanswered,
        (ctx) => methods.UploadCSVStream(call as AsyncIterable<UploadChunk__Output>, ctx),
      ),
    DownloadResult: unary(methods.DownloadResult),
    GetResult: unary(methods.GetResult),
    StartUpload: unary(methods.StartUpload),
    AppendUpload: unary(methods.AppendUpload),
    FinishUpload: unary(methods.FinishUpload),
    CancelUpload: unary(methods.CancelUpload),
  };
}

/**
 * Answers a unary or client-streaming call with `work`'s promise. Until then the call is in
 * `unanswered`, where a shutdown may answer it first; the later answer is dropped. A failure goes
 * to grpc-js as it was thrown, in a {@linkcode FailedCallTrailer}, for the error interceptor to map.
 */
function respond<T>(
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>,
  callback: grpc.sendUnaryData<T>,
  unanswered: Set<(status: Partial<grpc.StatusObject>) => void>,
  work: (ctx: CallContext) => Promise<T>,
): void {
  const ctx = contextOf(call);
  let answered = false;
  const answer = (send: () => void) => {
    if (answered) return;
    answered = true;
    unanswered.delete(cut);
    // The request id goes out in the response headers, whatever the outcome.
    if (!call.cancelled) {
      const metadata = new grpc.Metadata();
      metadata.set(REQUEST_ID_HEADER, ctx.requestId!);
      call.sendMetadata(metadata);
    }
    send();
  };
  const cut = (status: Partial<grpc.StatusObject>) => answer(() => callback(status));
  unanswered.add(cut);
  Promise.try(() => work(ctx)).then(
    (response) => answer(() => callback(null, response)),
    (error) =>
      answer(() => {
        // Once the call has ended (cancelled, or refused by the call guard), its request stream
        // fails with whatever error the runtime gives; nobody hears the answer, so it is not an
        // error.
        if (call.cancelled) callback(CALL_ENDED_STATUS);
        else callback(FAILED_CALL, null, new FailedCallTrailer(error));
      }),
  );
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

/**
 * HTTP/2 settings for fast uploads. Node's defaults (64 KiB windows, 16 KiB frames) make a client
 * stream pay one socket write per 16 KiB and the server one WINDOW_UPDATE per few frames; on this
 * runtime that capped uploads near 140 MB/s. 256 KiB frames with a 4 MiB window measured 210-250
 * MB/s (a 2 MiB window ~200). The window bounds what each stream can have buffered in the server,
 * so many concurrent uploads cost up to 4 MiB each.
 */
export const UPLOAD_HTTP2_SETTINGS = {
  initialWindowSize: 4 * 1024 * 1024,
  maxFrameSize: 256 * 1024,
} as const;

/**
 * grpc-js 1.14 offers no option for these settings, so they are applied to each new session of
 * the servers it created, found in its private `http2Servers` field (grpc-js is pinned in
 * deno.json). If the field changes, this tunes nothing and only speed is lost; the test
 * "tuneHttp2Sessions finds grpc-js's http2 servers ..." in `grpc_server_test.ts` fails then.
 * Upstream, https://github.com/grpc/grpc-node/pull/3058 makes the server read
 * `grpc-node.flow_control_window` (the window, not the frame size): once released, the window
 * can move to that option. Returns how many HTTP/2 servers were tuned.
 */
export function tuneHttp2Sessions(server: grpc.Server): number {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map)) return 0;
  let tuned = 0;
  for (const http2Server of http2Servers.keys()) {
    if (typeof http2Server?.on !== "function") continue;
    http2Server.on("session", (session: Http2SessionLike) => {
      session.settings(UPLOAD_HTTP2_SETTINGS);
      session.setLocalWindowSize?.(UPLOAD_HTTP2_SETTINGS.initialWindowSize);
    });
    tuned++;
  }
  return tuned;
}

/** The part of `node:http2`'s ServerHttp2Session used here. */
interface Http2SessionLike {
  settings(settings: typeof UPLOAD_HTTP2_SETTINGS): void;
  setLocalWindowSize?(size: number): void;
}
