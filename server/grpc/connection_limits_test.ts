/**
 * Connection limits of the gRPC port over real sockets: idle connections are closed by grpc-js
 * (including ones that never open a stream), keepalive pings are sent, and
 * SETTINGS_MAX_CONCURRENT_STREAMS is advertised.
 */

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { createFakeSalesService } from "../web/_test_fake_sales_service.ts";
import { type GrpcServerOptions, startGrpcServer } from "./grpc_server.ts";
import { framed, rawCall } from "./_test_raw_grpc.ts";
import { consistently, eventually } from "../_test_eventually.ts";

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** An empty SETTINGS frame: length 0, type 4, no flags, stream 0. */
const EMPTY_SETTINGS = new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const FRAME_SETTINGS = 4;
const FRAME_PING = 6;
const FRAME_GOAWAY = 7;

async function startServer(options: GrpcServerOptions = {}) {
  const server = await startGrpcServer(createFakeSalesService().service, { port: 0, ...options });
  return {
    port: server.port,
    [Symbol.asyncDispose]: () => server.shutdown(100),
  };
}

/** What a raw TCP client saw: the frame types the server sent, and when the server closed. */
interface RawConnection {
  frameTypes: number[];
  /** Milliseconds from connecting to the server closing the connection; undefined while open. */
  closedAfterMs?: number;
  close(): void;
}

/**
 * Opens a TCP connection, sends `hello` (the preface, or nothing), and records the frames the
 * server sends until it closes the connection. The client never answers anything.
 */
async function rawConnection(port: number, hello: Uint8Array): Promise<RawConnection> {
  const connection = await Deno.connect({ hostname: "127.0.0.1", port });
  const opened = performance.now();
  const seen: RawConnection = {
    frameTypes: [],
    close: () => {
      try {
        connection.close();
      } catch {
        // Already closed by the server.
      }
    },
  };
  if (hello.length > 0) await connection.write(hello);
  (async () => {
    let pending = new Uint8Array(0);
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const read = await connection.read(buffer);
        if (read === null) break;
        const joined = new Uint8Array(pending.length + read);
        joined.set(pending);
        joined.set(buffer.subarray(0, read), pending.length);
        let at = 0;
        while (joined.length - at >= 9) {
          const length = (joined[at] << 16) | (joined[at + 1] << 8) | joined[at + 2];
          if (joined.length - at < 9 + length) break;
          seen.frameTypes.push(joined[at + 3]);
          at += 9 + length;
        }
        pending = joined.slice(at);
      }
    } catch {
      // Reset by the server, or closed by the test.
    }
    seen.closedAfterMs = performance.now() - opened;
  })();
  return seen;
}

Deno.test({
  name: "startGrpcServer closes connections that open no stream within the idle timeout",
  async fn(t) {
    await using server = await startServer({ connectionIdleTimeoutSec: 0.3 });
    for (
      const [name, hello] of [
        [
          "the HTTP/2 preface and SETTINGS, then silence",
          new Uint8Array([...PREFACE, ...EMPTY_SETTINGS]),
        ],
        ["nothing at all", new Uint8Array(0)],
      ] as const
    ) {
      await t.step(name, async () => {
        const connection = await rawConnection(server.port, hello);
        try {
          await eventually(() => connection.closedAfterMs !== undefined, "the server to close it");
          assert.ok(
            connection.closedAfterMs! >= 250,
            `closed after ${connection.closedAfterMs} ms`,
          );
          assert.equal(connection.frameTypes[0], FRAME_SETTINGS);
          assert.ok(
            connection.frameTypes.includes(FRAME_GOAWAY),
            `frames ${connection.frameTypes}`,
          );
        } finally {
          connection.close();
        }
      });
    }
  },
});

Deno.test({
  name: "startGrpcServer keeps a connection with a call in progress past the idle timeout",
  async fn() {
    await using server = await startServer({ connectionIdleTimeoutSec: 0.2 });
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    let goaway = false;
    session.on("goaway", () => goaway = true);
    try {
      // A Watch stays open until the client ends it.
      const watch = rawCall(session, "/grpc.health.v1.Health/Watch");
      watch.stream.end(framed(new Uint8Array(0)));
      await consistently(
        () => !goaway,
        "the server to keep a connection that has a call in progress",
        600,
      );
      assert.equal(goaway, false, "the server closed a connection that had a call in progress");
      watch.stream.close(http2.constants.NGHTTP2_CANCEL);
      await eventually(() => goaway, "the server to close the connection once idle");
    } finally {
      session.destroy();
    }
  },
});

Deno.test({
  name: "startGrpcServer sends keepalive pings",
  async fn() {
    await using server = await startServer({ keepaliveTimeMs: 100 });
    const connection = await rawConnection(
      server.port,
      new Uint8Array([...PREFACE, ...EMPTY_SETTINGS]),
    );
    try {
      await eventually(() => connection.frameTypes.includes(FRAME_PING), "a PING frame");
    } finally {
      connection.close();
    }
  },
});

Deno.test({
  name: "startGrpcServer advertises SETTINGS_MAX_CONCURRENT_STREAMS",
  async fn(t) {
    for (const [name, option, expected] of [["default", undefined, 256], ["set", 7, 7]] as const) {
      await t.step(name, async () => {
        await using server = await startServer({ maxConcurrentStreams: option });
        const session = http2.connect(`http://127.0.0.1:${server.port}`);
        session.on("error", () => {});
        try {
          const settings = await new Promise<http2.Settings>((resolve) =>
            session.once("remoteSettings", resolve)
          );
          assert.equal(settings.maxConcurrentStreams, expected);
        } finally {
          session.destroy();
        }
      });
    }
  },
});
