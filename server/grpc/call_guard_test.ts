/**
 * Tests of the gRPC call guard over real sockets: a grpc-js server (`startGrpcServer`) on port 0 with
 * the fake service, and raw HTTP/2 clients that send exactly the bytes each case needs.
 */

import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as http2 from "node:http2";
import { Status } from "../errors.ts";
import { BufferBudget } from "../service/buffer_budget.ts";
import type { SalesService } from "../service/types.ts";
import { createFakeSalesService } from "../web/_test_fake_sales_service.ts";
import {
  createCallGuard,
  markUndecodable,
  type RequestStream,
  requestStreamOf,
} from "./call_guard.ts";
import { type GrpcServerOptions, peerOf, startGrpcServer } from "./grpc_server.ts";
import { GrpcSalesClient } from "./sales_client.ts";
import { salesServiceDefinition } from "./sales_proto.ts";
import type { UploadChunk__Output } from "../../gen/proto_loader/sales/v1/UploadChunk.ts";
import {
  bindOnFreePort,
  framed,
  lengthPrefix,
  rawCall,
  uploadRequest,
  write,
} from "./_test_raw_grpc.ts";
import { consistently, eventually } from "../_test_eventually.ts";

const UPLOAD = "/sales.v1.SalesService/UploadCSV";
const UPLOAD_STREAM = "/sales.v1.SalesService/UploadCSVStream";
const MIB = 1024 * 1024;
const TOKEN = "s3cret-token";

/** CSV-ish bytes: `size` bytes, one line every 100. */
function csvBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size).fill(0x41);
  for (let i = 99; i < size; i += 100) bytes[i] = 10;
  return bytes;
}

interface GuardedServer {
  url: string;
  port: number;
  budget: BufferBudget;
  service: SalesService;
  calls: string[];
  peers: (string | undefined)[];
  connect(): http2.ClientHttp2Session;
  [Symbol.asyncDispose](): Promise<void>;
}

async function startGuardedServer(
  options: GrpcServerOptions & {
    budgetBytes?: number;
    waitMs?: number;
    minReceiveBytesPerSec?: number;
    receiveGraceMs?: number;
  } = {},
): Promise<GuardedServer> {
  const budget = new BufferBudget({
    maxBytes: options.budgetBytes ?? 64 * MIB,
    waitMs: options.waitMs ?? 5000,
    retryAfterMs: 1500,
    minReceiveBytesPerSec: options.minReceiveBytesPerSec,
    receiveGraceMs: options.receiveGraceMs,
  });
  const fake = createFakeSalesService();
  const peers: (string | undefined)[] = [];
  const service: SalesService = {
    ...fake.service,
    uploadCsv(request, ctx) {
      peers.push(ctx.peer);
      return fake.service.uploadCsv(request, ctx);
    },
  };
  const server = await startGrpcServer(service, { port: 0, budget, ...options });
  const sessions: http2.ClientHttp2Session[] = [];
  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    port: server.port,
    budget,
    service,
    calls: fake.log.calls,
    peers,
    connect() {
      const session = http2.connect(url);
      session.on("error", () => {});
      sessions.push(session);
      return session;
    },
    async [Symbol.asyncDispose]() {
      for (const session of sessions) session.destroy();
      await server.shutdown(100);
    },
  };
}

/** A call as the server saw it: its HTTP/2 stream and the bytes read from it so far. */
interface SeenCall {
  path: string;
  stream: RequestStream;
  bytesRead: number;
}

/**
 * A grpc-js server with the guard behind a spy that watches each call's stream, serving
 * `UploadCSV` and `UploadCSVStream` by counting bytes. It keeps the runtime's default 64 KiB
 * stream windows, so a client can get only that far ahead of what the server reads.
 */
async function startMeteredServer(budgetBytes: number) {
  const budget = new BufferBudget({ maxBytes: budgetBytes, waitMs: 5000 });
  const seen: SeenCall[] = [];
  const spy: grpc.ServerInterceptor = (method, call) => {
    const stream = requestStreamOf(call)!;
    const seenCall: SeenCall = { path: method.path, stream, bytesRead: 0 };
    stream.on("data", (chunk) => seenCall.bytesRead += chunk.length);
    seen.push(seenCall);
    // Handing on the base call itself, so that the guard sees it as it would in production.
    return call as grpc.ServerInterceptingCall;
  };
  const server = new grpc.Server({ interceptors: [spy, createCallGuard({ budget })] });
  const rows = (bytes: number) => ({ rows: String(bytes) });
  server.addService(markUndecodable(salesServiceDefinition()), {
    UploadCSV: (
      call: grpc.ServerUnaryCall<UploadChunk__Output, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => callback(null, rows(call.request.data.length)),
    UploadCSVStream: (
      call: grpc.ServerReadableStream<UploadChunk__Output, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      let bytes = 0;
      call.on("data", (chunk: UploadChunk__Output) => bytes += chunk.data.length);
      call.on("end", () => callback(null, rows(bytes)));
      call.on("error", () => {});
    },
  });
  const port = await bindOnFreePort(server);
  const sessions: http2.ClientHttp2Session[] = [];
  return {
    budget,
    seen,
    connect() {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on("error", () => {});
      sessions.push(session);
      return session;
    },
    [Symbol.asyncDispose]() {
      for (const session of sessions) session.destroy();
      server.forceShutdown();
      return Promise.resolve();
    },
  };
}

/** At most this much of a held message may be read: about two 64 KiB stream windows. */
const HELD_READ_LIMIT = 256 * 1024;

Deno.test({
  name: "createCallGuard refuses a call without a valid token before reading its request message",
  async fn(t) {
    await using s = await startGuardedServer({ apiToken: TOKEN });
    const session = s.connect();
    const cases: { name: string; headers: Record<string, string>; message: RegExp }[] = [
      { name: "no token", headers: {}, message: /requires an access token/ },
      {
        name: "malformed",
        headers: { authorization: "Basic x" },
        message: /Malformed authorization metadata/,
      },
      {
        name: "wrong token",
        headers: { authorization: "Bearer nope" },
        message: /access token is not valid/,
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        // A 60 MiB message is announced, and only its first 256 KiB are sent.
        const call = rawCall(session, UPLOAD, c.headers);
        call.stream.write(lengthPrefix(60 * MIB));
        call.stream.write(new Uint8Array(256 * 1024));
        const reply = await call.reply;
        assert.equal(reply.grpcStatus, Status.UNAUTHENTICATED);
        assert.match(reply.grpcMessage, c.message);
        // The server reset the stream (NO_ERROR) so the client stops sending the rest.
        await eventually(() => call.stream.rstCode !== undefined, "the stream reset");
        assert.equal(call.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR);
        assert.equal(s.budget.reserved, 0, "no byte of the message was reserved for reading");
      });
    }
    assert.deepEqual(s.calls, [], "the service saw none of the refused calls");

    await t.step("health checks need no token, and a valid token gets through", async () => {
      const client = new GrpcSalesClient(`127.0.0.1:${s.port}`);
      const authorized = new GrpcSalesClient(`127.0.0.1:${s.port}`, {
        metadata: { authorization: `Bearer ${TOKEN}` },
      });
      try {
        assert.equal(await client.checkHealth("sales.v1.SalesService"), "SERVING");
        await assert.rejects(client.upload(csvBytes(1000), "x.csv"), {
          code: Status.UNAUTHENTICATED,
        });
        assert.equal((await authorized.upload(csvBytes(1000), "x.csv")).rows, 10);
      } finally {
        client.close();
        authorized.close();
      }
    });
  },
});

Deno.test({
  name: "createCallGuard holds a message that does not fit the budget until room is free",
  async fn() {
    await using s = await startMeteredServer(3 * MIB);
    const message = uploadRequest(csvBytes(2 * MIB));
    const first = rawCall(s.connect(), UPLOAD);
    first.stream.write(lengthPrefix(message.length));
    first.stream.write(message.subarray(0, MIB));
    await eventually(() => s.budget.reserved === message.length, "the first message's reservation");

    const second = rawCall(s.connect(), UPLOAD);
    second.stream.end(framed(message));
    await eventually(() => s.budget.waiting === 1, "the second message to wait for room");
    // Paused: flow control holds the client while the message waits.
    const held = s.seen[1];
    await consistently(
      () => held.bytesRead < HELD_READ_LIMIT && held.stream.readableLength < HELD_READ_LIMIT,
      "the waiting message's stream to stay paused",
      200,
    );
    assert.ok(held.bytesRead < HELD_READ_LIMIT, `the server read ${held.bytesRead} bytes`);
    assert.ok(
      held.stream.readableLength < HELD_READ_LIMIT,
      `${held.stream.readableLength} buffered`,
    );
    assert.equal(s.budget.reserved, message.length);

    first.stream.end(message.subarray(MIB));
    const [firstReply, secondReply] = await Promise.all([first.reply, second.reply]);
    assert.equal(firstReply.grpcStatus, Status.OK, firstReply.grpcMessage);
    assert.equal(secondReply.grpcStatus, Status.OK, secondReply.grpcMessage);
    assert.equal(held.bytesRead, 5 + message.length);
    await eventually(() => s.budget.reserved === 0, "every reservation to be released");
  },
});

Deno.test({
  name: "createCallGuard keeps a stream paused when its handler asks for a message that waits",
  async fn() {
    await using s = await startMeteredServer(3 * MIB);
    const held = uploadRequest(csvBytes(2 * MIB));
    const holder = rawCall(s.connect(), UPLOAD);
    holder.stream.write(lengthPrefix(held.length));
    await eventually(() => s.budget.reserved === held.length, "the holder's reservation");

    // A small message and the prefix of a large one arrive together: the small one is handed
    // over (and the handler asks for the next, which resumes the stream in grpc-js) while the
    // large one waits for room.
    const small = framed(uploadRequest(csvBytes(1000), "s.csv"));
    const large = framed(uploadRequest(csvBytes(2 * MIB)));
    const streaming = rawCall(s.connect(), UPLOAD_STREAM);
    streaming.stream.end(new Uint8Array([...small, ...large]));
    await eventually(() => s.budget.waiting === 1, "the large message to wait for room");
    const waiting = s.seen[1];
    await consistently(
      () => waiting.bytesRead < HELD_READ_LIMIT,
      "the waiting message's stream to stay paused",
      200,
    );
    assert.ok(waiting.bytesRead < HELD_READ_LIMIT, `the server read ${waiting.bytesRead} bytes`);

    holder.stream.end(held);
    assert.equal((await holder.reply).grpcStatus, Status.OK);
    const reply = await streaming.reply;
    assert.equal(reply.grpcStatus, Status.OK, reply.grpcMessage);
    assert.equal(waiting.bytesRead, small.length + large.length);
    await eventually(() => s.budget.reserved === 0, "every reservation to be released");
  },
});

Deno.test({
  name: "createCallGuard refuses a message that finds no room with RESOURCE_EXHAUSTED and pushback",
  async fn() {
    await using s = await startGuardedServer({
      budgetBytes: 3 * MIB,
      waitMs: 100,
      tuneHttp2: false,
    });
    const message = uploadRequest(csvBytes(2 * MIB));
    const first = rawCall(s.connect(), UPLOAD);
    first.stream.write(lengthPrefix(message.length));
    first.stream.write(message.subarray(0, MIB));
    await eventually(() => s.budget.reserved === message.length, "the first message's reservation");

    const second = rawCall(s.connect(), UPLOAD);
    second.stream.write(framed(message));
    const refused = await second.reply;
    assert.equal(refused.grpcStatus, Status.RESOURCE_EXHAUSTED);
    assert.match(refused.grpcMessage, /does not fit in MAX_BUFFERED_BYTES \(3145728 bytes/);
    assert.equal(refused.headers["grpc-retry-pushback-ms"], "1500");
    assert.equal(s.budget.waiting, 0);

    first.stream.end(message.subarray(MIB));
    assert.equal((await first.reply).grpcStatus, Status.OK);
    await eventually(() => s.budget.reserved === 0, "every reservation to be released");
    // A grpc-js client gets the same status, with the trailer in its metadata.
    const holder = rawCall(s.connect(), UPLOAD);
    holder.stream.write(lengthPrefix(message.length));
    await eventually(() => s.budget.reserved > 0, "the holder's reservation");
    const client = new GrpcSalesClient(`127.0.0.1:${s.port}`);
    try {
      const status = await new Promise<grpc.ServiceError>((resolve) => {
        client.raw.UploadCSV(
          { data: csvBytes(2 * MIB), filename: "x.csv" },
          (error: grpc.ServiceError) => resolve(error),
        );
      });
      assert.equal(status.code, Status.RESOURCE_EXHAUSTED);
      assert.deepEqual(status.metadata.get("grpc-retry-pushback-ms"), ["1500"]);
    } finally {
      client.close();
      holder.stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    await eventually(() => s.budget.reserved === 0, "the holder's reservation to be released");
  },
});

Deno.test({
  name: "createCallGuard ends a call whose reserved message stops arriving, and frees its room",
  async fn() {
    await using s = await startGuardedServer({
      budgetBytes: 3 * MIB,
      tuneHttp2: false,
      // 2 MiB may take 0.2 s plus 2 s at 1 MiB/s: this client sends 64 KiB and stops.
      minReceiveBytesPerSec: MIB,
      receiveGraceMs: 200,
    });
    const message = uploadRequest(csvBytes(2 * MIB));
    const trickle = rawCall(s.connect(), UPLOAD);
    trickle.stream.write(lengthPrefix(message.length));
    trickle.stream.write(message.subarray(0, 64 * 1024));
    await eventually(() => s.budget.reserved === message.length, "the message's reservation");
    const refused = await trickle.reply;
    assert.equal(refused.grpcStatus, Status.RESOURCE_EXHAUSTED);
    assert.match(refused.grpcMessage, /did not arrive within 2\.2 s: .*MAX_BUFFERED_BYTES/);
    await eventually(() => s.budget.reserved === 0, "the room to be freed");
    // A message that arrives in time is not on the clock once complete.
    const whole = rawCall(s.connect(), UPLOAD);
    whole.stream.end(framed(message));
    assert.equal((await whole.reply).grpcStatus, Status.OK);
    await eventually(() => s.budget.reserved === 0, "every reservation to be released");
  },
});

Deno.test({
  name: "createCallGuard releases the reservations of cancelled calls",
  async fn() {
    await using s = await startGuardedServer({ budgetBytes: 3 * MIB, tuneHttp2: false });
    const message = uploadRequest(csvBytes(2 * MIB));
    const holding = rawCall(s.connect(), UPLOAD);
    holding.stream.write(lengthPrefix(message.length));
    holding.stream.write(message.subarray(0, 100_000));
    await eventually(() => s.budget.reserved === message.length, "the first reservation");
    const waiting = rawCall(s.connect(), UPLOAD);
    waiting.stream.write(framed(message));
    await eventually(() => s.budget.waiting === 1, "the second message to wait");

    waiting.stream.close(http2.constants.NGHTTP2_CANCEL);
    await eventually(() => s.budget.waiting === 0, "the cancelled wait to leave the queue");
    holding.stream.close(http2.constants.NGHTTP2_CANCEL);
    await eventually(() => s.budget.reserved === 0, "the cancelled call's reservation");

    // A stream cancelled between messages, with one message waiting for room.
    const streaming = rawCall(s.connect(), UPLOAD_STREAM);
    await write(streaming.stream, framed(uploadRequest(csvBytes(MIB))));
    streaming.stream.write(lengthPrefix(message.length));
    streaming.stream.write(message.subarray(0, 1000));
    await eventually(() => s.budget.reserved === message.length, "the streamed message's room");
    streaming.stream.close(http2.constants.NGHTTP2_CANCEL);
    await eventually(() => s.budget.reserved === 0, "the cancelled stream's reservations");

    // Nothing leaked: the whole budget is available to the next call.
    const next = rawCall(s.connect(), UPLOAD);
    next.stream.end(framed(uploadRequest(csvBytes(3 * MIB - 100))));
    assert.equal((await next.reply).grpcStatus, Status.OK);
    assert.equal(s.budget.reserved, 0);
  },
});

Deno.test({
  name: "createCallGuard releases each streamed message as the handler takes it",
  async fn() {
    // Ten 1 MiB messages through a 3 MiB budget: each must be released for the next to fit.
    await using s = await startGuardedServer({ budgetBytes: 3 * MIB, tuneHttp2: false });
    let maxReserved = 0;
    const client = new GrpcSalesClient(`127.0.0.1:${s.port}`);
    try {
      const chunks = function* () {
        for (let i = 0; i < 10; i++) {
          maxReserved = Math.max(maxReserved, s.budget.reserved);
          yield csvBytes(MIB);
        }
      };
      const response = await client.uploadStream(chunks(), "stream.csv");
      assert.equal(response.rows, 10 * Math.floor(MIB / 100));
    } finally {
      client.close();
    }
    assert.ok(maxReserved <= 3 * MIB);
    assert.equal(s.budget.reserved, 0);
  },
});

Deno.test({
  name: "createCallGuard answers an undecodable request message with INVALID_ARGUMENT",
  async fn(t) {
    await using s = await startGuardedServer({ apiToken: TOKEN });
    const session = s.connect();
    // Wire type 7 does not exist.
    const undecodable = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
    for (
      const [path, headers] of [
        [UPLOAD, { authorization: `Bearer ${TOKEN}` }],
        [UPLOAD_STREAM, { authorization: `Bearer ${TOKEN}` }],
        ["/grpc.health.v1.Health/Check", {}],
      ] as const
    ) {
      await t.step(path, async () => {
        const call = rawCall(session, path, headers);
        call.stream.end(framed(undecodable));
        const reply = await call.reply;
        assert.equal(reply.grpcStatus, Status.INVALID_ARGUMENT, reply.grpcMessage);
        assert.match(
          reply.grpcMessage,
          new RegExp(`^Cannot decode the request message of ${path}`),
        );
      });
    }
    assert.deepEqual(s.calls.filter((name) => name === "uploadCsv"), []);
    await eventually(() => s.budget.reserved === 0, "every reservation to be released");
  },
});

Deno.test({
  name: "requestStreamOf finds the HTTP/2 stream of grpc-js's base call",
  async fn() {
    // The budget relies on this grpc-js private (BaseServerInterceptingCall.stream). If this test
    // fails, grpc-js changed: MAX_BUFFERED_BYTES is no longer enforced on the gRPC port.
    const found: boolean[] = [];
    const server = new grpc.Server({
      interceptors: [(method, call) => {
        found.push(requestStreamOf(call) !== undefined);
        return createCallGuard()(method, call);
      }],
    });
    server.addService(
      { Echo: { ...echoMethod } } as grpc.ServiceDefinition,
      {
        Echo: (_call: unknown, callback: grpc.sendUnaryData<Uint8Array>) =>
          callback(null, new Uint8Array([1])),
      },
    );
    const port = await bindOnFreePort(server);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const call = rawCall(session, "/test.Echo/Echo");
      call.stream.end(framed(new Uint8Array([7])));
      assert.equal((await call.reply).grpcStatus, Status.OK);
      assert.deepEqual(
        found,
        [true],
        "grpc-js no longer keeps the request stream in BaseServerInterceptingCall.stream",
      );
    } finally {
      session.destroy();
      server.forceShutdown();
    }
  },
});

const echoMethod: grpc.MethodDefinition<Uint8Array, Uint8Array> = {
  path: "/test.Echo/Echo",
  requestStream: false,
  responseStream: false,
  requestSerialize: (value) => Buffer.from(value),
  requestDeserialize: (bytes) => bytes,
  responseSerialize: (value) => Buffer.from(value),
  responseDeserialize: (bytes) => bytes,
};

Deno.test({
  name: "startGrpcServer gives the service each call's peer address",
  async fn() {
    await using s = await startGuardedServer();
    const client = new GrpcSalesClient(`127.0.0.1:${s.port}`);
    try {
      await client.upload(csvBytes(100), "x.csv");
    } finally {
      client.close();
    }
    assert.equal(s.peers.length, 1);
    assert.match(s.peers[0]!, /^127\.0\.0\.1:\d+$/);
  },
});

Deno.test("peerOf brackets IPv6 addresses so the port stays apart", () => {
  assert.equal(peerOf("127.0.0.1:5678"), "127.0.0.1:5678");
  assert.equal(peerOf("::1:5678"), "[::1]:5678");
  assert.equal(peerOf("::ffff:10.0.0.1:443"), "[::ffff:10.0.0.1]:443");
  assert.equal(peerOf("::1"), "::1");
  assert.equal(peerOf("unknown"), undefined);
});
