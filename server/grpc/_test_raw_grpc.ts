/**
 * A gRPC client at the HTTP/2 level (`node:http2`), for tests that need what grpc-js clients never
 * send: part of a message, a wrong content type, bytes that are not protobuf, an expired deadline.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import * as http2 from "node:http2";

/** What the server answered on one stream. */
export interface RawReply {
  /** The HTTP `:status`. */
  httpStatus: number;
  /** `grpc-status`, from a trailers-only answer or the trailers; undefined when there was none. */
  grpcStatus?: number;
  /** `grpc-message`, decoded; empty when there was none. */
  grpcMessage: string;
  /** Response headers and trailers together. */
  headers: Record<string, string | string[] | undefined>;
  /** Milliseconds from the request to the answer. */
  elapsedMs: number;
}

/** One raw call: write request bytes to `stream`, await `reply`. */
export interface RawCall {
  stream: http2.ClientHttp2Stream;
  reply: Promise<RawReply>;
}

/** Starts a POST to `path` with gRPC headers plus `headers`; the body is up to the caller. */
export function rawCall(
  session: http2.ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
): RawCall {
  const started = performance.now();
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...headers,
  });
  const reply = new Promise<RawReply>((resolve, reject) => {
    let seen: Record<string, string | string[] | undefined> = {};
    const settle = () =>
      resolve({
        httpStatus: Number(seen[":status"]),
        grpcStatus: seen["grpc-status"] === undefined ? undefined : Number(seen["grpc-status"]),
        grpcMessage: decodeURIComponent(String(seen["grpc-message"] ?? "")),
        headers: seen,
        elapsedMs: performance.now() - started,
      });
    stream.on("response", (response) => {
      seen = { ...response };
      // A trailers-only answer (or a non-gRPC one) is complete with its headers.
      if (response["grpc-status"] !== undefined || response[":status"] !== 200) settle();
    });
    stream.on("trailers", (trailers) => {
      seen = { ...seen, ...trailers };
      settle();
    });
    stream.on("data", () => {});
    stream.on("close", () => {
      if (seen[":status"] === undefined) reject(new Error(`stream closed, code ${stream.rstCode}`));
      else settle();
    });
    stream.on("error", () => {});
  });
  // Calls a test cancels on purpose are never awaited.
  reply.catch(() => {});
  return { stream, reply };
}

/** The 5-byte gRPC prefix of an uncompressed message of `length` bytes. */
export function lengthPrefix(length: number): Uint8Array {
  const prefix = new Uint8Array(5);
  new DataView(prefix.buffer).setUint32(1, length);
  return prefix;
}

/** `message` with its gRPC length prefix. */
export function framed(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + message.length);
  frame.set(lengthPrefix(message.length));
  frame.set(message, 5);
  return frame;
}

/** An encoded `UploadRequest` (or `UploadChunk`): `bytes data = 1; string filename = 2`. */
export function uploadRequest(data: Uint8Array, filename = "raw.csv"): Uint8Array {
  const name = new TextEncoder().encode(filename);
  const parts = [0x0a, ...varint(data.length)];
  const message = new Uint8Array(parts.length + data.length + 1 + 5 + name.length);
  message.set(parts);
  message.set(data, parts.length);
  let at = parts.length + data.length;
  const nameHeader = [0x12, ...varint(name.length)];
  message.set(nameHeader, at);
  at += nameHeader.length;
  message.set(name, at);
  return message.subarray(0, at + name.length);
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  while (value > 127) {
    bytes.push((value & 127) | 128);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}

/** Writes `bytes` to `stream` and resolves once the stream has taken them (flow control allowing). */
export function write(stream: http2.ClientHttp2Stream, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(bytes, (error) => error ? reject(error) : resolve());
  });
}

/** Binds a bare grpc-js `server` to a free loopback port, insecure, and gives the port. */
export function bindOnFreePort(server: grpc.Server): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => error ? reject(error) : resolve(bound),
    )
  );
}
