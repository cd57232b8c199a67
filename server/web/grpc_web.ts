/**
 * gRPC-Web for `sales.v1.SalesService`, served in-process by `Deno.serve`: a `@connectrpc/connect`
 * router adapts the transport-free {@linkcode SalesService} (the same one grpc-js serves), and this
 * module adds what connect leaves out: `application/grpc-web-text` (base64) requests, gRPC-Web
 * `UNIMPLEMENTED` for unknown methods instead of a bare 404, and CORS.
 *
 * @module
 */

import {
  Code,
  ConnectError,
  createConnectRouter,
  type HandlerContext,
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
import { AppError, RETRY_PUSHBACK_HEADER, toAppError } from "../errors.ts";
import { SalesService as SalesServiceDesc } from "../gen/sales_pb.ts";
import type { CallContext, SalesService, UploadChunk, UploadResponse } from "../service/types.ts";
import { Base64DecodeStream, Base64EncodeStream } from "./grpc_web_text.ts";

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
}

/** Request headers a browser may send cross-origin: gRPC-Web's own plus `authorization`. */
const CORS_ALLOWED_HEADERS = [
  "content-type",
  "x-grpc-web",
  "x-user-agent",
  "grpc-timeout",
  "authorization",
].join(", ");
/** Response headers a cross-origin script may read: without these it sees no gRPC status. */
const CORS_EXPOSED_HEADERS = ["grpc-status", "grpc-message", "grpc-status-details-bin"].join(", ");

/** True when `request` is a gRPC-Web call (any method path) or a CORS preflight for one. */
export function isGrpcWebRequest(request: Request): boolean {
  if (request.method === "OPTIONS") {
    return request.headers.has("access-control-request-method") &&
      /^\/[\w.]+\/\w+$/.test(new URL(request.url).pathname);
  }
  return request.method === "POST" &&
    contentTypeRegExp.test(request.headers.get("content-type") ?? "");
}

/** Builds the fetch handler for gRPC-Web requests (those {@linkcode isGrpcWebRequest} accepts). */
export function createGrpcWebHandler(
  options: GrpcWebHandlerOptions,
): (request: Request, info?: Deno.ServeHandlerInfo) => Promise<Response> {
  const corsOrigins = new Set(options.corsOrigins ?? []);
  const router = createConnectRouter({
    grpc: false,
    grpcWeb: true,
    connect: false,
    readMaxBytes: options.readMaxBytes ?? 64 * 1024 * 1024,
  });
  router.service(SalesServiceDesc, createSalesServiceImpl(options.service));
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
  ): Promise<Response> {
    const origin = allowedOrigin(request);
    if (request.method === "OPTIONS") {
      const response = new Response(null, { status: 204 });
      if (origin !== undefined) {
        response.headers.set("access-control-allow-methods", "POST, OPTIONS");
        response.headers.set("access-control-allow-headers", CORS_ALLOWED_HEADERS);
        response.headers.set("access-control-max-age", "7200");
      }
      return withCors(response, origin);
    }
    const contentType = request.headers.get("content-type") ?? "";
    const text = /^application\/grpc-web-text/i.test(contentType);
    const handler = handlers.get(new URL(request.url).pathname);
    if (handler === undefined) {
      return withCors(unimplementedResponse(new URL(request.url).pathname, text), origin);
    }
    const header = text ? textHeadersToBinary(request.headers) : request.headers;
    const body = text ? request.body?.pipeThrough(new Base64DecodeStream()) : request.body;
    const universalResponse = await handler({
      httpVersion: "1.1",
      method: request.method,
      url: request.url,
      header,
      body: body ?? ReadableStream.from<Uint8Array>([]),
      signal: clientGoneSignal(request, info),
    });
    const response = universalServerResponseToFetch(universalResponse);
    return withCors(text ? binaryResponseToText(response) : response, origin);
  };
}

/** The connect implementation of SalesService: converts messages and errors, nothing else. */
export function createSalesServiceImpl(
  service: SalesService,
): ServiceImpl<typeof SalesServiceDesc> {
  return {
    uploadCSV: (request, ctx) =>
      call(
        () =>
          service.uploadCsv({ data: request.data, filename: request.filename }, toCallContext(ctx)),
        toUploadResponseInit,
      ),
    uploadCSVStream: (requests, ctx) =>
      call(
        () => service.uploadCsvStream(toUploadChunks(requests), toCallContext(ctx)),
        toUploadResponseInit,
      ),
    downloadResult: (request, ctx) =>
      call(
        () => service.downloadResult({ resultId: request.resultId }, toCallContext(ctx)),
        (r) => r,
      ),
    startUpload: (request, ctx) =>
      call(
        () =>
          service.startUpload(
            { filename: request.filename, size: toSafeNumber(request.size, "size") },
            toCallContext(ctx),
          ),
        (response) => response,
      ),
    appendUpload: (request, ctx) =>
      call(
        () =>
          service.appendUpload(
            {
              uploadId: request.uploadId,
              offset: toSafeNumber(request.offset, "offset"),
              data: request.data,
            },
            toCallContext(ctx),
          ),
        (response) => ({
          committedOffset: BigInt(response.committedOffset),
          rows: BigInt(response.rows),
          badRows: BigInt(response.badRows),
        }),
      ),
    finishUpload: (request, ctx) =>
      call(
        () => service.finishUpload({ uploadId: request.uploadId }, toCallContext(ctx)),
        toUploadResponseInit,
      ),
    cancelUpload: (request, ctx) =>
      call(
        () => service.cancelUpload({ uploadId: request.uploadId }, toCallContext(ctx)),
        () => ({}),
      ),
  };
}

/** Runs a service call and maps its failure to a ConnectError, the one place this transport does. */
async function call<T, R>(run: () => Promise<T>, convert: (value: T) => R): Promise<R> {
  try {
    return convert(await run());
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    const appError = toAppError(error);
    if (!(error instanceof AppError)) console.error("[gRPC-Web] Unexpected error:", error);
    const trailers = appError.retryAfterMs === undefined
      ? undefined
      : { [RETRY_PUSHBACK_HEADER]: String(Math.ceil(appError.retryAfterMs)) };
    throw new ConnectError(appError.message, appError.code as number as Code, trailers);
  }
}

function toCallContext(ctx: HandlerContext): CallContext {
  return {
    signal: ctx.signal,
    header: (name) => ctx.requestHeader.get(name) ?? undefined,
  };
}

async function* toUploadChunks(
  requests: AsyncIterable<{ data: Uint8Array; filename: string }>,
): AsyncIterable<UploadChunk> {
  for await (const request of requests) yield { data: request.data, filename: request.filename };
}

function toUploadResponseInit(response: UploadResponse) {
  return {
    resultId: response.resultId,
    downloadUrl: response.downloadUrl,
    rows: BigInt(response.rows),
    badRows: BigInt(response.badRows),
    departments: BigInt(response.departments),
    elapsedSec: response.elapsedSec,
    badRowSamples: response.badRowSamples.map((row) => ({
      line: BigInt(row.line),
      reason: row.reason,
      raw: row.raw,
    })),
  };
}

function toSafeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ConnectError(`Field ${field} is too large: ${value}`, Code.InvalidArgument);
  }
  return Number(value);
}

/** A gRPC-Web answer for a method this server does not have: HTTP 200 with status 12 in trailers. */
function unimplementedResponse(path: string, text: boolean): Response {
  const trailer = new Headers();
  setTrailerStatus(
    trailer,
    new ConnectError(`Method not found: ${path.slice(1)}`, Code.Unimplemented),
  );
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
