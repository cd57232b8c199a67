/**
 * A raw HTTP/1.1 client over TCP, for tests that must send what `fetch` refuses to: custom `Host`
 * lines, no `Host` at all, bodies that stop half way.
 *
 * @module
 */

import { concatBytes } from "../_test_bytes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A parsed HTTP/1.1 response. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** One open connection: write requests and bodies as you like, read one response. */
export class RawConnection implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  #buffered: Uint8Array = new Uint8Array(0);

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Connects to `127.0.0.1:port`. */
  static async open(port: number): Promise<RawConnection> {
    return new RawConnection(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Writes text (request line and headers) or bytes (body). */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  /** Reads one response: status line, headers, and a body framed by length or chunks. */
  async readResponse(timeoutMs = 5_000): Promise<RawResponse> {
    const timer = setTimeout(() => this.close(), timeoutMs);
    try {
      let end;
      while ((end = indexOf(this.#buffered, "\r\n\r\n")) < 0) await this.#fill();
      const head = decoder.decode(this.#buffered.subarray(0, end)).split("\r\n");
      this.#buffered = this.#buffered.subarray(end + 4);
      const status = Number(head[0].split(" ")[1]);
      const headers = new Headers();
      for (const line of head.slice(1)) {
        const colon = line.indexOf(":");
        headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      let body: Uint8Array;
      if (headers.get("transfer-encoding")?.includes("chunked")) {
        const parts: Uint8Array[] = [];
        while (true) {
          let lineEnd;
          while ((lineEnd = indexOf(this.#buffered, "\r\n")) < 0) await this.#fill();
          const size = parseInt(decoder.decode(this.#buffered.subarray(0, lineEnd)), 16);
          this.#buffered = this.#buffered.subarray(lineEnd + 2);
          while (this.#buffered.length < size + 2) await this.#fill();
          if (size === 0) break;
          parts.push(this.#buffered.slice(0, size));
          this.#buffered = this.#buffered.subarray(size + 2);
        }
        body = concatBytes(parts);
      } else {
        const length = Number(headers.get("content-length") ?? 0);
        while (this.#buffered.length < length) await this.#fill();
        body = this.#buffered.slice(0, length);
        this.#buffered = this.#buffered.subarray(length);
      }
      return { status, headers, body };
    } finally {
      clearTimeout(timer);
    }
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new Error("Connection closed before the response was complete");
    this.#buffered = concatBytes([this.#buffered, chunk.subarray(0, n)]);
  }

  /** Closes the connection (idempotent). */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** Sends `head` (request line and headers, without the blank line) and reads the response. */
export async function rawRequest(port: number, head: string): Promise<RawResponse> {
  await using connection = await RawConnection.open(port);
  await connection.write(`${head}\r\nConnection: close\r\n\r\n`);
  return await connection.readResponse();
}

function indexOf(bytes: Uint8Array, text: string): number {
  const pattern = encoder.encode(text);
  outer: for (let i = 0; i + pattern.length <= bytes.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (bytes[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}
