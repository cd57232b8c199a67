/**
 * Raw HTTP/2 over a TCP socket, for benchmarks that must send what no well-behaved client sends:
 * a preface and then silence, or streams opened and reset at once (rapid reset). Frames are built
 * by hand (RFC 9113 section 4), header blocks as HPACK literals without Huffman coding (RFC 7541
 * section 6.2.2), which every decoder accepts.
 *
 * @example
 * ```ts ignore
 * import { RawH2Connection } from "./_h2_frames.ts";
 * const connection = await RawH2Connection.open(50051, { silent: true });
 * const { seconds, goaway } = await connection.closed;
 * ```
 *
 * @module
 */

import { concatBytes } from "../server/_test_bytes.ts";

/** The client connection preface (RFC 9113 section 3.4). */
export const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Frame types used here (RFC 9113 section 6). */
export const FrameType = {
  HEADERS: 0x1,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
} as const;

/** Flag bits used here. */
export const Flag = { ACK: 0x1, END_STREAM: 0x1, END_HEADERS: 0x4 } as const;

/** The `CANCEL` error code of RST_STREAM, as a browser sends when a request is abandoned. */
export const CANCEL = 0x8;

/** One frame: 9-byte header (length, type, flags, stream id) then `payload`. */
export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = new Uint8Array(),
): Uint8Array {
  const bytes = new Uint8Array(9 + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, payload.length << 8);
  bytes[3] = type;
  bytes[4] = flags;
  view.setUint32(5, streamId & 0x7fffffff);
  bytes.set(payload, 9);
  return bytes;
}

/** An HPACK header block of literals without indexing, names and values under 127 bytes. */
export function literalHeaderBlock(headers: ReadonlyArray<readonly [string, string]>): Uint8Array {
  const encoder = new TextEncoder();
  const parts: number[] = [];
  for (const [name, value] of headers) {
    const nameBytes = encoder.encode(name);
    const valueBytes = encoder.encode(value);
    if (nameBytes.length > 126 || valueBytes.length > 126) throw new RangeError("Header too long");
    parts.push(0x00, nameBytes.length, ...nameBytes, valueBytes.length, ...valueBytes);
  }
  return new Uint8Array(parts);
}

/** A RST_STREAM frame for `streamId` with `errorCode`. */
export function rstStream(streamId: number, errorCode = CANCEL): Uint8Array {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, errorCode);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

/** How a raw connection ended. */
export interface RawClose {
  /** Seconds from opening to the server closing the socket (or it failing). */
  seconds: number;
  /** The GOAWAY the server sent before closing, if any. */
  goaway?: { lastStreamId: number; errorCode: number };
}

/** Options of {@linkcode RawH2Connection.open}. */
export interface RawH2Options {
  /**
   * Send nothing after the preface and an empty SETTINGS, not even the SETTINGS and PING
   * acknowledgements the protocol asks for.
   * @default {false}
   */
  silent?: boolean;
  /** @default {"127.0.0.1"} */
  hostname?: string;
}

/** A TCP connection that has sent the preface and an empty SETTINGS frame. */
export class RawH2Connection {
  /** Settles when the server closes the connection (never rejects). */
  readonly closed: Promise<RawClose>;
  /** The last GOAWAY received, if any. */
  goaway: RawClose["goaway"];
  readonly #conn: Deno.TcpConn;
  readonly #opened: number;
  #writing: Promise<unknown> = Promise.resolve();
  /** Callers of {@linkcode RawH2Connection.ping} waiting for the acknowledgement, oldest first. */
  readonly #pings: (() => void)[] = [];

  private constructor(conn: Deno.TcpConn, silent: boolean) {
    this.#conn = conn;
    this.#opened = performance.now();
    this.closed = this.#read(silent);
  }

  /** Connects to `port` and sends the preface and an empty SETTINGS frame. */
  static async open(port: number, options: RawH2Options = {}): Promise<RawH2Connection> {
    const conn = await Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port });
    const connection = new RawH2Connection(conn, options.silent ?? false);
    await connection.send(concatBytes([PREFACE, frame(FrameType.SETTINGS, 0, 0)]));
    return connection;
  }

  /** Writes `bytes` after anything sent before; rejects if the connection is gone. */
  send(bytes: Uint8Array): Promise<void> {
    const write = this.#writing.then(async () => {
      for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
    });
    this.#writing = write.catch(() => {});
    return write;
  }

  /**
   * Sends a PING and resolves with true once it is acknowledged, false if the connection closes
   * first. A server answers frames in order, so the answer means it has read everything before.
   */
  async ping(): Promise<boolean> {
    const acknowledged = new Promise<boolean>((resolve) => this.#pings.push(() => resolve(true)));
    try {
      await this.send(frame(FrameType.PING, 0, 0, new Uint8Array(8)));
    } catch {
      return false;
    }
    return await Promise.race([acknowledged, this.closed.then(() => false)]);
  }

  /** Closes the socket from this side. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed by the server.
    }
  }

  async #read(silent: boolean): Promise<RawClose> {
    const buffer = new Uint8Array(64 * 1024);
    let pending: Uint8Array = new Uint8Array();
    try {
      while (true) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        pending = concatBytes([pending, buffer.subarray(0, n)]);
        while (pending.length >= 9) {
          const length = (pending[0] << 16) | (pending[1] << 8) | pending[2];
          if (pending.length < 9 + length) break;
          const type = pending[3];
          const flags = pending[4];
          const payload = pending.subarray(9, 9 + length);
          if (type === FrameType.GOAWAY && length >= 8) {
            const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
            this.goaway = {
              lastStreamId: view.getUint32(0) & 0x7fffffff,
              errorCode: view.getUint32(4),
            };
          } else if (!silent && type === FrameType.SETTINGS && (flags & Flag.ACK) === 0) {
            this.send(frame(FrameType.SETTINGS, Flag.ACK, 0)).catch(() => {});
          } else if (type === FrameType.PING && (flags & Flag.ACK) !== 0) {
            this.#pings.shift()?.();
          } else if (!silent && type === FrameType.PING) {
            this.send(frame(FrameType.PING, Flag.ACK, 0, payload.slice())).catch(() => {});
          }
          pending = pending.slice(9 + length);
        }
      }
    } catch {
      // A reset counts as closed, like an orderly end.
    }
    this.close();
    return { seconds: (performance.now() - this.#opened) / 1000, goaway: this.goaway };
  }
}
