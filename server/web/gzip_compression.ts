/**
 * `grpc-encoding: gzip` for the gRPC-Web endpoint: a connect-es `Compression` built on `node:zlib`
 * (connect-es ships one only in `@connectrpc/connect-node`). Decompression stops at the caller's
 * limit instead of inflating whatever a client sends.
 *
 * @example
 * ```ts
 * import { gzipCompression } from "./gzip_compression.ts";
 *
 * const message = new TextEncoder().encode("Toys,2024-01-02,3\n".repeat(100));
 * const packed = await gzipCompression.compress(message);
 * const unpacked = await gzipCompression.decompress(packed, message.length);
 * if (unpacked.length !== message.length) throw new Error("round trip");
 * const refused = await gzipCompression.decompress(packed, 10).catch((error) => error);
 * if (refused.code !== 8) throw new Error("expected RESOURCE_EXHAUSTED");
 * ```
 *
 * @module
 */

import { gunzip, gzip, type InputType, type ZlibOptions } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";

function run(
  codec: (
    input: InputType,
    options: ZlibOptions,
    callback: (error: Error | null, result: Uint8Array) => void,
  ) => void,
  input: Uint8Array,
  options: ZlibOptions,
): Promise<Uint8Array<ArrayBuffer>> {
  return new Promise((resolve, reject) => {
    codec(input, options, (error, result) => {
      if (error !== null) reject(error);
      // A Buffer may be a view into a shared pool: copy it into an ArrayBuffer of its own.
      else resolve(new Uint8Array(result));
    });
  });
}

/** gzip as connect-es uses it, for request and response messages alike. */
export const gzipCompression: Compression = {
  name: "gzip",
  compress: (bytes) => run(gzip, bytes, {}),
  async decompress(bytes, readMaxBytes) {
    if (bytes.length === 0) return new Uint8Array(0);
    try {
      // maxOutputLength makes zlib give up as soon as the output passes the limit.
      return await run(gunzip, bytes, { maxOutputLength: Math.max(1, readMaxBytes) });
    } catch (error) {
      if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
        throw new ConnectError(
          `Decompressed request message is larger than ${readMaxBytes} bytes`,
          Code.ResourceExhausted,
        );
      }
      throw new ConnectError(
        `Request message is not valid gzip: ${(error as Error).message}`,
        Code.InvalidArgument,
      );
    }
  },
};

/**
 * The uncompressed size a gzip member declares in its trailer (ISIZE, RFC 1952), or undefined when
 * `bytes` is not gzip (too short, or without the magic bytes). It is only a claim: inflate with it
 * as the limit.
 */
export function gzipDeclaredSize(bytes: Uint8Array): number | undefined {
  // 10-byte header, at least 2 bytes of deflate data, 8-byte trailer.
  if (bytes.length < 20 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return undefined;
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(
    bytes.length - 4,
    true,
  );
}
