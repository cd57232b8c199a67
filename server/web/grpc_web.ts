/**
 * gRPC-Web for `sales.v1.SalesService` and `grpc.health.v1.Health` `Check`, served in-process by
 * `Deno.serve`: a `@connectrpc/connect` router adapts the transport-free {@linkcode SalesService}
 * (the same one grpc-js serves), and this module adds what connect leaves out:
 * `application/grpc-web-text` (base64) requests, gRPC-Web `UNIMPLEMENTED` for unknown methods
 * instead of a bare 404, CORS, `grpc-encoding: gzip`, and two guards that run before connect reads
 * anything: the access token, checked from the headers alone, and the memory budget, which every
 * request message is reserved from as its length prefix arrives.
 *
 * @module
 */

import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  encodeEnvelope,
  type UniversalHandler,
  universalServerResponseToFetch,
} from "@connectrpc/connect/protocol";
import {
  contentTypeRegExp,
  setTrailerStatus,
  trailerFlag,
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";
import { AppError, toAppError } from "../errors.ts";
import {
  Health as HealthDesc,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.ts";
import { SalesService as SalesServiceDesc } from "../../gen/sales_pb.ts";
import { createTokenCheck } from "../service/auth.ts";
import type { BufferBudget } from "../service/buffer_budget.ts";
import { REQUEST_ID_HEADER, resolveRequestId } from "../service/request_id.ts";
import type { CallContext, SalesService } from "../service/types.ts";
import { createWireMethods, uint64AsBigInt } from "../service/wire.ts";
import { consoleLogger, type Logger } from "../logger.ts";
import { gzipCompression } from "./gzip_compression.ts";
import { Base64DecodeStream, Base64EncodeStream } from "./grpc_web_text.ts";
import { parseTarget, splitRequestUrl } from "./host_check.ts";
import { RequestEnvelopeStream, toConnectError } from "./request_envelope_stream.ts";

/** Options for {@linkcode createGrpcWebHandler}. */
export interface GrpcWebHandlerOptions {
  /** The service implementation every transport shares. */
  service: SalesService;
  /**
   * Origins allowed to call the endpoint from another origin (CORS); `"*"` allows any.
   * @default {[]}
   */
  corsOrigins?: readonly string[];
  /**
   * Largest request message accepted, in bytes; larger ones fail with `RESOURCE_EXHAUSTED`.
   * @default {67_108_864}
   */
  readMaxBytes?: number;
  /**
   * The token (`SALES_API_TOKEN`) every call but health checks must carry as
   * `authorization: Bearer <token>`; a call without it is refused from its headers, unread.
   * @default {undefined} (no token needed)
   */
  apiToken?: string;
  /**
   * Bytes of request messages being received at once, shared with the gRPC port.
   * @default {undefined} (not counted)
   */
  budget?: BufferBudget;
  /** Where unexpected errors are logged. @default {consoleLogger} */
  logger?: Logger;
}

/** Request headers a browser may send cross-origin: gRPC-Web's own, the token and our ids. */
const CORS_ALLOWED_HEADERS = [
  "content-type",
  "x-grpc-web",
  "x-user-agent",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "authorization",
  "x-upload-id",
  "x-request-id",
].join(", ");
/** Response headers a cross-origin script may read: without these it sees no gRPC status. */
const CORS_EXPOSED_HEADERS = [
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  REQUEST_ID_HEADER,
].join(", ");

/** Methods an RPC path answers, for `Allow` headers. */
export const RPC_METHODS = "POST, OPTIONS";

/** Whether `path` has the shape of a gRPC method path: `/package.Service/Method`. */
export function isRpcPath(path: string): boolean {
  return /^\/[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\/[A-Za-z_]\w*$/.test(path);
}

/** Whether `contentType` is one of gRPC-Web's (binary or text, proto or JSON). */
export function isGrpcWebContentType(contentType: string | null): boolean {
  return contentTypeRegExp.test(contentType ?? "");
}

/** The path of the request target (the caller has vouched for the URL's authority). */
function requestPath(request: Request): string {
  const parts = splitRequestUrl(request.url);
  return parts === undefined ? "/" : parseTarget(parts.target).path;
}

/** The connection's remote address, as the service's per-client limits read it. */
const PEER = createContextKey<string | undefined>(undefined, { description: "peer address" });

const HEALTH_PREFIX = `/${HealthDesc.typeName}/`;

/**
 * Builds the fetch handler for gRPC-Web requests: POSTs of a gRPC-Web content type and the CORS
 * preflights of RPC paths, as `web_app.ts` routes them.
 * Pass `path` when the caller has already taken it from the request target.
 */
export function createGrpcWebHandler(
  options: GrpcWebHandlerOptions,
): (request: Request, info?: Deno.ServeHandlerInfo, path?: string) => Promise<Response> {
  const corsOrigins = new Set(options.corsOrigins ?? []);
  const readMaxBytes = options.readMaxBytes ?? 64 * 1024 * 1024;
  const { budget } = options;
  const checkToken = options.apiToken === undefined || options.apiToken === ""
    ? undefined
    : createTokenCheck(options.apiToken);
  const router = createConnectRouter({
    grpc: false,
    grpcWeb: true,
    connect: false,
    readMaxBytes,
    // Responses are gzipped when the client's grpc-accept-encoding (or, without one, its own
    // grpc-encoding) allows it. Requests are inflated by RequestEnvelopeStream, within the budget.
    acceptCompression: [gzipCompression],
    requestGate: resolveCallRequestId,
    interceptors: [createErrorInterceptor(options.logger ?? consoleLogger)],
  });
  router.service(SalesServiceDesc, createSalesServiceImpl(options.service));
  router.service(HealthDesc, createHealthImpl());
  const handlers = new Map<string, UniversalHandler>(
    router.handlers.map((handler) => [handler.requestPath, handler]),
  );

  function allowedOrigin(request: Request): string | undefined {
    const origin = request.headers.get("origin");
    if (origin === null) return undefined;
    return corsOrigins.has(origin) || corsOrigins.has("*") ? origin : undefined;
  }

  function withCors(response: Response, origin: string | undefined): Response {
    response.headers.append("vary", "Origin");
    if (origin !== undefined) {
      response.headers.set("access-control-allow-origin", origin);
      response.headers.set("access-control-expose-headers", CORS_EXPOSED_HEADERS);
    }
    return response;
  }

  return async function handleGrpcWeb(
    request: Request,
    info?: Deno.ServeHandlerInfo,
    path = requestPath(request),
  ): Promise<Response> {
    const origin = allowedOrigin(request);
    if (request.method === "OPTIONS") {
      const response = new Response(null, { status: 204, headers: { allow: RPC_METHODS } });
      if (origin !== undefined) {
        response.headers.set("access-control-allow-methods", "POST, OPTIONS");
        response.headers.set("access-control-allow-headers", CORS_ALLOWED_HEADERS);
        response.headers.set("access-control-max-age", "7200");
      }
      return withCors(response, origin);
    }
    const contentType = request.headers.get("content-type") ?? "";
    const text = /^application\/grpc-web-text/i.test(contentType);
    // Refusals come before the body is read: the client may still be sending it, and we drop it.
    const refuse = (error: ConnectError) => {
      request.body?.cancel().catch(() => {});
      return withCors(trailersOnlyResponse(error, text), origin);
    };
    if (checkToken !== undefined && !path.startsWith(HEALTH_PREFIX)) {
      try {
        checkToken({
          signal: NEVER_ABORTED,
          header: (name) => request.headers.get(name) ?? undefined,
        });
      } catch (error) {
        return refuse(toConnectError(error) as ConnectError);
      }
    }
    const handler = handlers.get(path);
    if (handler === undefined) {
      return refuse(new ConnectError(`Method not found: ${path.slice(1)}`, Code.Unimplemented));
    }
    const signal = clientGoneSignal(request, info);
    const envelopes = new RequestEnvelopeStream({
      budget,
      readMaxBytes,
      gzip: request.headers.get("grpc-encoding")?.trim().toLowerCase() === "gzip",
      signal,
    });
    // The call ends when its response has been sent or the client has gone; either way the
    // bytes it held are released, whichever is noticed first.
    const release = () => envelopes.release();
    info?.completed.then(release, release);
    try {
      const header = text ? textHeadersToBinary(request.headers) : request.headers;
      const decoded = text ? request.body?.pipeThrough(new Base64DecodeStream()) : request.body;
      const universalResponse = await handler({
        httpVersion: "1.1",
        method: request.method,
        url: request.url,
        header,
        body: (decoded ?? ReadableStream.from<Uint8Array>([])).pipeThrough(envelopes),
        signal,
        contextValues: createContextValues().set(PEER, peerOf(info)),
      });
      const body = universalResponse.body;
      const response = universalServerResponseToFetch({
        ...universalResponse,
        body: body === undefined ? undefined : releasedAtEnd(body, release),
      });
      if (body === undefined) release();
      return withCors(text ? binaryResponseToText(response) : response, origin);
    } catch (error) {
      release();
      throw error;
    }
  };
}

const NEVER_ABORTED = new AbortController().signal;

/** `body`, calling `release` once it has been read to the end, failed or been cancelled. */
async function* releasedAtEnd(
  body: AsyncIterable<Uint8Array>,
  release: () => void,
): AsyncIterable<Uint8Array> {
  try {
    yield* body;
  } finally {
    release();
  }
}

/** `1.2.3.4:5678` or `[::1]:5678`, as grpc-js names peers; undefined in-process. */
function peerOf(info: Deno.ServeHandlerInfo | undefined): string | undefined {
  const address = info?.remoteAddr;
  if (address === undefined || !("hostname" in address)) return undefined;
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return `${host}:${address.port}`;
}

/** Health checks over gRPC-Web: the server and SalesService are serving while it answers. */
export function createHealthImpl(): Partial<ServiceImpl<typeof HealthDesc>> {
  const known = new Set(["", SalesServiceDesc.typeName]);
  return {
    check(request) {
      if (!known.has(request.service)) {
        throw new ConnectError(
          `Health status unknown for service ${request.service}: this server reports on "" (itself) and ${SalesServiceDesc.typeName}`,
          Code.NotFound,
        );
      }
      return { status: ServingStatus.SERVING };
    },
  };
}

/**
 * The connect implementation of SalesService, built from the one wire mapping (`service/wire.ts`,
 * uint64 as `bigint` here). Errors pass through as thrown: {@linkcode createErrorInterceptor} maps
 * them, and {@linkcode resolveCallRequestId} has put the call's request id in its headers.
 */
export function createSalesServiceImpl(
  service: SalesService,
): ServiceImpl<typeof SalesServiceDesc> {
  const methods = createWireMethods(service, uint64AsBigInt);
  return {
    uploadCSV: (request, ctx) => methods.UploadCSV(request, toCallContext(ctx)),
    uploadCSVStream: (requests, ctx) => methods.UploadCSVStream(requests, toCallContext(ctx)),
    downloadResult: (request, ctx) => methods.DownloadResult(request, toCallContext(ctx)),
    startUpload: (request, ctx) => methods.StartUpload(request, toCallContext(ctx)),
    appendUpload: (request, ctx) => methods.AppendUpload(request, toCallContext(ctx)),
    finishUpload: (request, ctx) => methods.FinishUpload(request, toCallContext(ctx)),
    cancelUpload: (request, ctx) => methods.CancelUpload(request, toCallContext(ctx)),
    getResult: (request, ctx) => methods.GetResult(request, toCallContext(ctx)),
  };
}

/** The call's request id, as {@linkcode resolveCallRequestId} resolved and echoed it. */
const REQUEST_ID = createContextKey<string | undefined>(undefined, { description: "request id" });

/**
 * Resolves the call's request id before anything else runs (connect's request gate) and puts it in
 * the response headers, which go out whatever the outcome.
 */
export function resolveCallRequestId(ctx: HandlerContext): void {
  // Health checks never carried one.
  if (ctx.service.typeName !== SalesServiceDesc.typeName) return;
  const requestId = resolveRequestId(ctx.requestHeader.get(REQUEST_ID_HEADER) ?? undefined);
  ctx.values.set(REQUEST_ID, requestId);
  ctx.responseHeader.set(REQUEST_ID_HEADER, requestId);
}

/**
 * The router interceptor that maps every failure to a ConnectError, the one place this transport
 * does: `AppError`s keep their code and message (and retry hint), anything unexpected becomes
 * `INTERNAL` with a generic message and is logged with the method's name. It also answers a call
 * whose deadline passed while its request was read, without doing the work.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  return (next) => async (request) => {
    try {
      throwIfDeadlineExceeded(request.signal);
      return await next(request);
    } catch (error) {
      // The service sees only an aborted signal and says CANCELLED; the reason tells a deadline.
      throwIfDeadlineExceeded(request.signal);
      if (error instanceof ConnectError) throw error;
      const appError = toAppError(error);
      if (!(error instanceof AppError)) {
        logger.error(
          `[gRPC-Web] ${request.method.parent.typeName}/${request.method.name} failed:`,
          error,
        );
      }
      throw toConnectError(appError);
    }
  };
}

function throwIfDeadlineExceeded(signal: AbortSignal): void {
  const reason: unknown = signal.aborted ? signal.reason : undefined;
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) throw reason;
}

function toCallContext(ctx: HandlerContext): CallContext {
  return {
    signal: ctx.signal,
    header: (name) => ctx.requestHeader.get(name) ?? undefined,
    peer: ctx.values.get(PEER),
    transport: "grpc-web",
    requestId: ctx.values.get(REQUEST_ID) ??
      resolveRequestId(ctx.requestHeader.get(REQUEST_ID_HEADER) ?? undefined),
  };
}

/** A gRPC-Web answer with no message: HTTP 200, the status (and its metadata) in trailers. */
function trailersOnlyResponse(error: ConnectError, text: boolean): Response {
  const trailer = new Headers(error.metadata);
  setTrailerStatus(trailer, error);
  const frame = encodeEnvelope(trailerFlag, trailerSerialize(trailer));
  const body = text ? new Blob([frame]).stream().pipeThrough(new Base64EncodeStream()) : frame;
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": text ? "application/grpc-web-text+proto" : "application/grpc-web+proto",
    },
  });
}

/** The headers of a grpc-web-text request as connect expects them for the decoded binary body. */
function textHeadersToBinary(headers: Headers): Headers {
  const binary = new Headers(headers);
  binary.set(
    "content-type",
    (headers.get("content-type") ?? "").replace(/grpc-web-text/i, "grpc-web"),
  );
  binary.delete("content-length");
  return binary;
}

/**
 * A signal that aborts when the client goes away. Under `Deno.serve`, reading `request.signal`
 * prints a warning about its legacy abort-after-success behaviour; `info.completed` rejects on a
 * lost client without it. Requests built in-process (tests) have no `info` and use their signal.
 */
function clientGoneSignal(request: Request, info: Deno.ServeHandlerInfo | undefined): AbortSignal {
  if (info === undefined) return request.signal;
  const controller = new AbortController();
  info.completed.catch((error) => controller.abort(error));
  return controller.signal;
}

/** Rewrites connect's binary gRPC-Web response as grpc-web-text (base64 body). */
function binaryResponseToText(response: Response): Response {
  const headers = new Headers(response.headers);
  headers.set(
    "content-type",
    (response.headers.get("content-type") ?? "application/grpc-web+proto").replace(
      /grpc-web/i,
      "grpc-web-text",
    ),
  );
  headers.delete("content-length");
  return new Response(response.body?.pipeThrough(new Base64EncodeStream()) ?? null, {
    status: response.status,
    headers,
  });
}
