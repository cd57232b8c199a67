/**
 * Unary gRPC and gRPC-Web calls over `node:http2` with a request frame encoded once, for
 * benchmarks that send one large message on many calls at once (grpc-js would serialize a copy
 * per call), need each call's raw status, retry trailer and time to the status, or watch a
 * session's GOAWAY and close. Both ports speak HTTP/2 without TLS (prior knowledge), so one
 * client serves both protocols.
 *
 * Deno 2.9's `node:http2` client acknowledges writes at once, whatever the stream's flow-control
 * window: handed a whole large body, it buffers it and then reports the server's early answer
 * late (hundreds of ms), which would measure the client. So bodies are sent in small pieces, one
 * per turn of the event loop, and sending stops as soon as the status is in. A stream the server
 * does not read still accumulates what was sent in this process: its memory is the client's, not
 * the server's.
 *
 * @example
 * ```ts ignore
 * import { grpcFrame, openSession, unaryCall } from "./_grpc_h2.ts";
 * const session = await openSession("http://127.0.0.1:50051");
 * const result = await unaryCall(session, "grpc", "/grpc.health.v1.Health/Check", grpcFrame(new Uint8Array()));
 * session.close();
 * ```
 *
 * @module
 */

import http2 from "node:http2";
import { concatBytes } from "../server/_test_bytes.ts";

/** Which framing a call uses: native gRPC (trailers in HTTP/2 trailers) or gRPC-Web (in the body). */
export type WireProtocol = "grpc" | "grpc-web";

/** What one call ended with. */
export interface RawCallResult {
  /** `grpc-status`, or -1 when the call got none (connection lost, timed out). */
  status: number;
  /** `grpc-message`, decoded, or what went wrong. */
  message: string;
  /** The `grpc-retry-pushback-ms` trailer, if any. */
  pushbackMs: string | undefined;
  /** Milliseconds from the request to its status. */
  ms: number;
  /** The response message (without framing) of a successful call. */
  response: Uint8Array | undefined;
}

/** `message` with the 5-byte gRPC length prefix (uncompressed). */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  return frame;
}

/** Connects to `url` (`http://host:port`) with HTTP/2 prior knowledge; resolves once connected. */
export function openSession(url: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.once("connect", () => {
      session.off("error", reject);
      // Errors after connecting end the calls on the session, which report them.
      session.on("error", () => {});
      resolve(session);
    });
    session.once("error", reject);
  });
}

/** The headers every call sends; `metadata` adds to them (`authorization`, `x-forwarded-for`). */
export function requestHeaders(
  protocol: WireProtocol,
  path: string,
  metadata: Record<string, string>,
): http2.OutgoingHttpHeaders {
  return {
    ":method": "POST",
    ":path": path,
    "content-type": protocol === "grpc" ? "application/grpc" : "application/grpc-web+proto",
    ...(protocol === "grpc" ? { te: "trailers" } : { "x-grpc-web": "1" }),
    ...metadata,
  };
}

/**
 * Sends `frame` (from {@linkcode grpcFrame}) as one unary call on `session` and resolves with its
 * outcome; never rejects. The call is cancelled after `timeoutMs`.
 */
export function unaryCall(
  session: http2.ClientHttp2Session,
  protocol: WireProtocol,
  path: string,
  frame: Uint8Array,
  options: { metadata?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RawCallResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let done = false;
    let status: { status: number; message: string; pushbackMs: string | undefined } | undefined;
    let statusMs = 0;
    const finish = (fallback: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const parsed = parseBody(protocol, concat(chunks));
      status ??= parsed.trailers;
      resolve({
        status: status?.status ?? -1,
        message: status?.message ?? fallback,
        pushbackMs: status?.pushbackMs,
        ms: status !== undefined && statusMs > 0 ? statusMs : performance.now() - started,
        response: status?.status === 0 ? parsed.messages[0] : undefined,
      });
    };
    let request: http2.ClientHttp2Stream;
    try {
      request = session.request(requestHeaders(protocol, path, options.metadata ?? {}));
    } catch (error) {
      resolve({
        status: -1,
        message: String((error as Error)?.message ?? error),
        pushbackMs: undefined,
        ms: performance.now() - started,
        response: undefined,
      });
      return;
    }
    const timer = setTimeout(() => {
      finish(`no status after ${options.timeoutMs ?? 120_000} ms`);
      request.close(http2.constants.NGHTTP2_CANCEL);
    }, options.timeoutMs ?? 120_000);
    // Once the status is in, the call is over: stop sending, as grpc-js does, even if the server
    // answered before reading the whole request.
    const ended = () => {
      finish("");
      if (!request.closed) request.close(http2.constants.NGHTTP2_CANCEL);
    };
    const noteStatus = (headers: http2.IncomingHttpHeaders) => {
      const found = statusOf(headers);
      if (found !== undefined && status === undefined) {
        status = found;
        statusMs = performance.now() - started;
        ended();
      }
    };
    // A trailers-only answer (an early refusal) carries the status in the response headers.
    request.on("response", noteStatus);
    request.on("trailers", noteStatus);
    request.on("data", (chunk: Uint8Array) => {
      chunks.push(chunk);
      // gRPC-Web trailers are the body's last frame: note when they arrive, not when it closes.
      if (protocol === "grpc-web" && status === undefined) {
        const trailers = parseWebBody(concat(chunks)).trailers;
        if (trailers !== undefined) {
          chunks.splice(0, chunks.length, concat(chunks));
          status = trailers;
          statusMs = performance.now() - started;
          ended();
        }
      }
    });
    request.on("error", (error: Error) => finish(error.message));
    request.on("close", () => finish(`stream closed (code ${request.rstCode}) without a status`));
    sendInPieces(request, frame, () => done).catch(() => {});
  });
}

/** Bytes written per turn of the event loop; small enough that an answer is seen within ~1 ms. */
const PIECE_BYTES = 64 * 1024;

/** Writes `frame` one piece per event-loop turn and ends the stream, unless `over()` first. */
async function sendInPieces(
  request: http2.ClientHttp2Stream,
  frame: Uint8Array,
  over: () => boolean,
): Promise<void> {
  for (let at = 0; at < frame.length; at += PIECE_BYTES) {
    if (over() || request.closed) return;
    // A copy, not a view: the client would otherwise copy the whole underlying buffer per write.
    const piece = frame.slice(at, at + PIECE_BYTES);
    if (at + PIECE_BYTES >= frame.length) return void request.end(piece);
    request.write(piece);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  if (frame.length === 0 && !request.closed) request.end();
}

/** A call's status fields from its headers or trailers, or undefined without `grpc-status`. */
export function statusOf(
  headers: Record<string, string | string[] | number | undefined>,
): { status: number; message: string; pushbackMs: string | undefined } | undefined {
  const status = headers["grpc-status"];
  if (status === undefined) return undefined;
  const message = headers["grpc-message"];
  const pushback = headers["grpc-retry-pushback-ms"];
  return {
    status: Number(status),
    message: typeof message === "string" ? decodeURIComponent(message) : "",
    pushbackMs: pushback === undefined ? undefined : String(pushback),
  };
}

/**
 * The messages of a response body (flag byte, 4-byte length, payload; uncompressed) and, for
 * gRPC-Web, its trailers once the trailer frame (flag 0x80) is complete.
 */
export function parseBody(
  protocol: WireProtocol,
  body: Uint8Array,
): { messages: Uint8Array[]; trailers: ReturnType<typeof statusOf> } {
  if (protocol === "grpc-web") return parseWebBody(body);
  const messages = framesOf(body).filter((frame) => frame.flags === 0).map((f) => f.payload);
  return { messages, trailers: undefined };
}

function framesOf(body: Uint8Array): { flags: number; payload: Uint8Array }[] {
  const frames: { flags: number; payload: Uint8Array }[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  while (at + 5 <= body.length) {
    const length = view.getUint32(at + 1);
    if (at + 5 + length > body.length) break;
    frames.push({ flags: body[at], payload: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return frames;
}

/** A gRPC-Web body: its messages, and its trailers once the trailer frame (flag 0x80) is complete. */
function parseWebBody(body: Uint8Array) {
  const frames = framesOf(body);
  const trailerFrame = frames.find((frame) => (frame.flags & 0x80) !== 0);
  let trailers: ReturnType<typeof statusOf>;
  if (trailerFrame !== undefined) {
    const fields: Record<string, string> = {};
    for (const line of new TextDecoder().decode(trailerFrame.payload).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        fields[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    trailers = statusOf(fields);
  }
  return { messages: frames.filter((f) => f.flags === 0).map((f) => f.payload), trailers };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return chunks.length === 1 ? chunks[0] : concatBytes(chunks);
}
