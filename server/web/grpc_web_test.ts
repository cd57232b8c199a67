import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { gunzipSync, gzipSync } from "node:zlib";
import { AppError, Status } from "../errors.ts";
import {
  Health as HealthDesc,
  HealthCheckResponse_ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.ts";
import {
  DownloadRequestSchema,
  DownloadResponseSchema,
  SalesService as SalesServiceDesc,
  UploadRequestSchema,
  UploadResponseSchema,
} from "../../gen/sales_pb.ts";
import { eventually } from "../_test_eventually.ts";
import { testAlone } from "../_test_alone.ts";
import { RecordingLogger } from "../_test_recording_logger.ts";
import { BufferBudget } from "../service/buffer_budget.ts";
import type { CallContext, SalesService, UploadChunk } from "../service/types.ts";
import { startSignedSalesService } from "../_test_signed_sales_service.ts";
import {
  appends,
  CORRUPT_SECOND,
  expectedResult,
  sizeOf,
  type TestFile,
  THREE_FILES,
} from "../service/_test_multi_file.ts";
import { createGrpcWebHandler, isGrpcWebContentType, isRpcPath } from "./grpc_web.ts";
import { RawConnection } from "./_test_raw_http.ts";
import {
  createFakeSalesService,
  FAKE_RESULT_CSV,
  FAKE_RESULT_ID,
} from "./_test_fake_sales_service.ts";

const BASE = "http://localhost:3000";
const DOWNLOAD_PATH = "/sales.v1.SalesService/DownloadResult";

function setup(options: { corsOrigins?: string[]; readMaxBytes?: number } = {}) {
  const { service, log } = createFakeSalesService({ chunkSize: 8 });
  const logger = new RecordingLogger();
  const handler = createGrpcWebHandler({ service, logger, ...options });
  // The handler must only ever see requests the web app routes to it.
  const route = (request: Request) => {
    const gRpcWeb = request.method === "POST"
      ? isGrpcWebContentType(request.headers.get("content-type"))
      : request.method === "OPTIONS" && isRpcPath(new URL(request.url).pathname);
    assert.ok(gRpcWeb, `${request.method} ${request.url} is not gRPC-Web`);
    return handler(request);
  };
  const transport = createGrpcWebTransport({
    baseUrl: BASE,
    fetch: (input, init) => route(new Request(input, init)),
  });
  return { log, logger, route, client: createClient(SalesServiceDesc, transport) };
}

/** Splits a gRPC-Web body into its frames: messages and the trailer (as a Headers object). */
function parseFrames(body: Uint8Array): { messages: Uint8Array[]; trailer?: Headers } {
  const messages = [];
  let trailer: Headers | undefined;
  let offset = 0;
  while (offset < body.length) {
    const flags = body[offset];
    const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
    const data = body.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if (flags & 0x80) {
      trailer = new Headers();
      for (const line of new TextDecoder().decode(data).split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) trailer.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
    } else {
      messages.push(data);
    }
  }
  return { messages, trailer };
}

function frame(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unbase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function downloadRequestFrame(resultId: string): Uint8Array<ArrayBuffer> {
  return frame(toBinary(DownloadRequestSchema, create(DownloadRequestSchema, { resultId })));
}

Deno.test("createGrpcWebHandler serves every resumable-upload RPC to a connect-web client", async () => {
  const { client, log } = setup();
  const started = await client.startUpload({ filename: "sales.csv", size: 12n });
  assert.equal(started.chunkSize, 8);
  const data = new TextEncoder().encode("a,b,1\nc,d,2\n");
  const first = await client.appendUpload({
    uploadId: started.uploadId,
    offset: 0n,
    data: data.subarray(0, 8),
  });
  assert.equal(first.committedOffset, 8n);
  // A retry of the same chunk after a lost reply is acknowledged without counting twice.
  const retried = await client.appendUpload({
    uploadId: started.uploadId,
    offset: 0n,
    data: data.subarray(0, 8),
  });
  assert.equal(retried.rows, 1n);
  await client.appendUpload({ uploadId: started.uploadId, offset: 8n, data: data.subarray(8) });
  const finished = await client.finishUpload({ uploadId: started.uploadId });
  assert.equal(finished.rows, 2n);
  assert.equal(finished.resultId, FAKE_RESULT_ID);
  assert.equal(finished.elapsedSec, 0.25);
  const download = await client.downloadResult({ resultId: FAKE_RESULT_ID });
  assert.equal(new TextDecoder().decode(download.data), FAKE_RESULT_CSV);
  const unary = await client.uploadCSV({ filename: "x.csv", data: data });
  assert.equal(unary.rows, 2n);
  const again = await client.startUpload({ filename: "other.csv", size: 0n });
  await client.cancelUpload({ uploadId: again.uploadId });
  assert.deepEqual(log.cancelled, [again.uploadId]);
});

Deno.test("createGrpcWebHandler passes request headers to the service", async () => {
  const { client, log } = setup();
  await client.downloadResult(
    { resultId: FAKE_RESULT_ID },
    { headers: { authorization: "Bearer t0ken", "x-test": "yes" } },
  );
  assert.deepEqual(log.headers.at(-1), { authorization: "Bearer t0ken", "x-test": "yes" });
});

Deno.test("createGrpcWebHandler maps service errors to gRPC status codes for the client", async (t) => {
  const { client, logger } = setup();
  const cases = [
    {
      name: "wrong offset",
      call: async () => {
        const { uploadId } = await client.startUpload({ filename: "a.csv", size: 0n });
        await client.appendUpload({ uploadId, offset: 5n, data: new Uint8Array(1) });
      },
      code: Code.FailedPrecondition,
      message: /offset 5 does not match committed offset 0/,
    },
    {
      name: "unknown upload",
      call: () => client.finishUpload({ uploadId: "nope" }),
      code: Code.NotFound,
      message: /Upload nope not found/,
    },
    {
      name: "malformed id",
      call: () => client.downloadResult({ resultId: "../etc/passwd" }),
      code: Code.InvalidArgument,
      message: /Malformed result id/,
    },
    {
      name: "unexpected error, without internals",
      call: () => client.uploadCSV({ filename: "crash.csv", data: new Uint8Array(0) }),
      code: Code.Internal,
      message: /^Internal server error$/,
      logged: true,
    },
  ];
  for (const { name, call, code, message, logged } of cases) {
    await t.step(name, async () => {
      logger.entries.length = 0;
      await assert.rejects(call, (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, code);
        assert.match(error.rawMessage, message);
        return true;
      });
      // Only the unexpected error is logged, once, with the method and its cause.
      assert.deepEqual(
        logger.entries.map((entry) => `${entry.level} ${entry.message}`),
        logged ? ["error [gRPC-Web] sales.v1.SalesService/UploadCSV failed:"] : [],
      );
      if (logged) assert.ok(logger.entries[0].details[0] instanceof Error);
    });
  }
});

Deno.test("createGrpcWebHandler sends errors as trailers with HTTP 200 (binary frames)", async () => {
  const { route } = setup();
  const response = await route(
    new Request(BASE + DOWNLOAD_PATH, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: downloadRequestFrame("ffffffffffffffffffffffffffffffff"),
    }),
  );
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/grpc-web+proto");
  const { messages, trailer } = parseFrames(new Uint8Array(await response.arrayBuffer()));
  assert.equal(messages.length, 0);
  assert.equal(trailer?.get("grpc-status"), "5");
  assert.match(decodeURIComponent(trailer?.get("grpc-message") ?? ""), /not found/);
});

Deno.test("createGrpcWebHandler answers application/grpc-web-text in base64", async (t) => {
  const { route } = setup();
  const request = downloadRequestFrame(FAKE_RESULT_ID);
  const bodies = {
    "one base64 text": base64(request),
    // The grpc-web client may encode each write separately: padded segments back to back.
    "padded segments back to back": base64(request.subarray(0, 4)) + base64(request.subarray(4)),
  };
  for (const [name, body] of Object.entries(bodies)) {
    await t.step(name, async () => {
      const response = await route(
        new Request(BASE + DOWNLOAD_PATH, {
          method: "POST",
          headers: { "content-type": "application/grpc-web-text", "x-grpc-web": "1" },
          body,
        }),
      );
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/grpc-web-text+proto");
      const { messages, trailer } = parseFrames(unbase64(await response.text()));
      assert.equal(trailer?.get("grpc-status"), "0");
      const message = fromBinary(DownloadResponseSchema, messages[0]);
      assert.equal(new TextDecoder().decode(message.data), FAKE_RESULT_CSV);
    });
  }
});

Deno.test("createGrpcWebHandler reports bad base64 as INVALID_ARGUMENT in a text trailer", async () => {
  const { route } = setup();
  const response = await route(
    new Request(BASE + DOWNLOAD_PATH, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text" },
      body: "AAAA*AAA",
    }),
  );
  assert.equal(response.status, 200);
  const { trailer } = parseFrames(unbase64(await response.text()));
  assert.equal(trailer?.get("grpc-status"), "3");
});

Deno.test("createGrpcWebHandler answers unknown methods with grpc-status 12, not HTTP 404", async (t) => {
  const { route } = setup();
  for (
    const [path, type] of [
      ["/sales.v1.SalesService/DeleteEverything", "application/grpc-web+proto"],
      ["/other.v1.Other/Call", "application/grpc-web"],
      ["/sales.v1.SalesService/Nope", "application/grpc-web-text"],
    ]
  ) {
    await t.step(`${type} ${path}`, async () => {
      const response = await route(
        new Request(BASE + path, {
          method: "POST",
          headers: { "content-type": type },
          body: type.includes("text") ? "AAAAAAA=" : new Uint8Array(5),
        }),
      );
      assert.equal(response.status, 200);
      const body = type.includes("text")
        ? unbase64(await response.text())
        : new Uint8Array(await response.arrayBuffer());
      const { trailer } = parseFrames(body);
      assert.equal(trailer?.get("grpc-status"), "12");
      assert.match(decodeURIComponent(trailer?.get("grpc-message") ?? ""), /Method not found: /);
    });
  }
});

Deno.test("createGrpcWebHandler refuses messages above readMaxBytes with RESOURCE_EXHAUSTED", async () => {
  const { client } = setup({ readMaxBytes: 1024 });
  await assert.rejects(
    () => client.uploadCSV({ filename: "big.csv", data: new Uint8Array(4096) }),
    (error: unknown) => error instanceof ConnectError && error.code === Code.ResourceExhausted,
  );
});

Deno.test("createGrpcWebHandler answers CORS preflights and exposes grpc-status to listed origins", async () => {
  const { route } = setup({ corsOrigins: ["https://app.example"] });
  const preflight = (origin: string) =>
    route(
      new Request(BASE + DOWNLOAD_PATH, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,x-grpc-web,authorization",
        },
      }),
    );
  const allowed = await preflight("https://app.example");
  assert.equal(allowed.status, 204);
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(allowed.headers.get("access-control-allow-methods") ?? "", /POST/);
  for (
    const header of [
      "content-type",
      "x-grpc-web",
      "authorization",
      "x-upload-id",
      "x-request-id",
      "grpc-accept-encoding",
      "grpc-encoding",
    ]
  ) {
    assert.match(allowed.headers.get("access-control-allow-headers") ?? "", new RegExp(header));
  }
  const refused = await preflight("https://evil.example");
  assert.equal(refused.headers.get("access-control-allow-origin"), null);

  const call = (origin: string) =>
    route(
      new Request(BASE + DOWNLOAD_PATH, {
        method: "POST",
        headers: { origin, "content-type": "application/grpc-web+proto" },
        body: downloadRequestFrame(FAKE_RESULT_ID),
      }),
    );
  const listed = await call("https://app.example");
  assert.equal(listed.headers.get("access-control-allow-origin"), "https://app.example");
  const exposed = listed.headers.get("access-control-expose-headers") ?? "";
  assert.match(exposed, /grpc-status/);
  assert.match(exposed, /grpc-message/);
  await listed.body?.cancel();
  const unlisted = await call("https://evil.example");
  assert.equal(unlisted.headers.get("access-control-allow-origin"), null);
  await unlisted.body?.cancel();
});

// --- Abuse-proofing: token before body, memory budget, deadlines, gzip, health, peer ---

const UPLOAD_PATH = "/sales.v1.SalesService/UploadCSV";
const TOKEN = "t0ken";

function uploadFrame(data: Uint8Array, filename = "a.csv"): Uint8Array<ArrayBuffer> {
  return frame(toBinary(UploadRequestSchema, create(UploadRequestSchema, { data, filename })));
}

function grpcWebPost(path: string, body: BodyInit, headers: Record<string, string> = {}) {
  return new Request(BASE + path, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", ...headers },
    body,
  });
}

async function trailerOf(response: Response): Promise<Headers> {
  const { trailer } = parseFrames(new Uint8Array(await response.arrayBuffer()));
  assert.ok(trailer, "no trailer frame");
  return trailer;
}

/** Serves `handler` on a real socket (127.0.0.1, port 0). */
function serve(
  handler: (request: Request, info: Deno.ServeHandlerInfo) => Promise<Response>,
) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  return {
    port: server.addr.port,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A service whose uploadCsv waits for `open()`; `inside` counts calls being served. */
function gatedService(onCall: (ctx: CallContext) => void = () => {}) {
  const { service } = createFakeSalesService();
  let open!: () => void;
  let opened = new Promise<void>((resolve) => open = resolve);
  const state = { inside: 0, maxInside: 0 };
  return {
    state,
    open: () => open(),
    close: () => opened = new Promise<void>((resolve) => open = resolve),
    service: {
      ...service,
      async uploadCsv(request: UploadChunk, ctx: CallContext) {
        state.inside++;
        state.maxInside = Math.max(state.maxInside, state.inside);
        onCall(ctx);
        try {
          await opened;
          return await service.uploadCsv(request, ctx);
        } finally {
          state.inside--;
        }
      },
    } satisfies SalesService,
  };
}

// Alone: it measures the process's resident memory.
testAlone(
  import.meta.url,
  "createGrpcWebHandler refuses a call without the token from its headers, unread, over a socket",
  async () => {
    const budget = new BufferBudget({ maxBytes: 1 << 30 });
    const { service, log } = createFakeSalesService();
    const handler = createGrpcWebHandler({ service, apiToken: TOKEN, budget });
    await using server = serve((request, info) => handler(request, info));
    const messageBytes = 24 << 20;
    const chunk = new Uint8Array(1 << 20);
    const prefix = new Uint8Array(5);
    new DataView(prefix.buffer).setUint32(1, messageBytes);
    const rssBefore = Deno.memoryUsage().rss;
    const clients = Array.from({ length: 8 }, async (_, i) => {
      await using connection = await RawConnection.open(server.port);
      await connection.write(
        `POST ${UPLOAD_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `Content-Type: application/grpc-web+proto\r\n` +
          (i % 2 === 0 ? "" : "Authorization: Bearer wrong\r\n") +
          `Content-Length: ${5 + messageBytes}\r\n\r\n`,
      );
      await connection.write(prefix);
      await connection.write(chunk);
      // The answer comes while 23 of the 24 MiB are still to be sent.
      const response = await connection.readResponse();
      assert.equal(response.status, 200);
      const { trailer } = parseFrames(response.body);
      assert.equal(trailer?.get("grpc-status"), "16");
      assert.match(
        decodeURIComponent(trailer?.get("grpc-message") ?? ""),
        i % 2 === 0 ? /requires an access token/ : /not valid/,
      );
      // The rest of the body goes nowhere: sending it costs the server nothing.
      for (let sent = chunk.length; sent < messageBytes; sent += chunk.length) {
        await connection.write(chunk);
      }
    });
    await Promise.all(clients);
    const grewMiB = (Deno.memoryUsage().rss - rssBefore) / (1 << 20);
    assert.ok(grewMiB < 64, `RSS grew by ${grewMiB.toFixed(1)} MiB for 192 MiB of refused bodies`);
    assert.deepEqual(log.calls, []);
    assert.equal(budget.reserved, 0);
  },
);

Deno.test("createGrpcWebHandler answers health checks over gRPC-Web, without a token", async (t) => {
  const { service } = createFakeSalesService();
  const handler = createGrpcWebHandler({ service, apiToken: TOKEN });
  const transport = createGrpcWebTransport({
    baseUrl: BASE,
    fetch: (input, init) => handler(new Request(input, init)),
  });
  const health = createClient(HealthDesc, transport);
  for (const name of ["", "sales.v1.SalesService"]) {
    await t.step(JSON.stringify(name), async () => {
      const { status } = await health.check({ service: name });
      assert.equal(status, HealthCheckResponse_ServingStatus.SERVING);
    });
  }
  await t.step("unknown service", async () => {
    await assert.rejects(
      () => health.check({ service: "other.v1.Other" }),
      (error: unknown) => error instanceof ConnectError && error.code === Code.NotFound,
    );
  });
  await t.step("SalesService still needs the token", async () => {
    const sales = createClient(SalesServiceDesc, transport);
    await assert.rejects(
      () => sales.downloadResult({ resultId: FAKE_RESULT_ID }),
      (error: unknown) => error instanceof ConnectError && error.code === Code.Unauthenticated,
    );
    const download = await sales.downloadResult(
      { resultId: FAKE_RESULT_ID },
      { headers: { authorization: `Bearer ${TOKEN}` } },
    );
    assert.equal(new TextDecoder().decode(download.data), FAKE_RESULT_CSV);
  });
});

Deno.test("createGrpcWebHandler holds a message's bytes against the budget and refuses with pushback when none is left", async () => {
  const budget = new BufferBudget({ maxBytes: 100_000, waitMs: 50, retryAfterMs: 1234 });
  const reservedInside: number[] = [];
  const gate = gatedService(() => reservedInside.push(budget.reserved));
  const handler = createGrpcWebHandler({ service: gate.service, budget });
  const message = (bytes: number) => uploadFrame(new Uint8Array(bytes).fill(10));
  const first = handler(grpcWebPost(UPLOAD_PATH, message(80_000)));
  await eventually(() => gate.state.inside === 1, "the first call to be served");
  const held = budget.reserved;
  assert.ok(held >= 80_000 && held < 80_100, `reserved ${held}`);
  // No room for another 40 kB while the first call runs: a short wait, then a refusal.
  const refused = await trailerOf(await handler(grpcWebPost(UPLOAD_PATH, message(40_000))));
  assert.equal(refused.get("grpc-status"), "8");
  assert.match(decodeURIComponent(refused.get("grpc-message") ?? ""), /MAX_BUFFERED_BYTES/);
  assert.equal(refused.get("grpc-retry-pushback-ms"), "1234");
  gate.open();
  assert.equal((await trailerOf(await first)).get("grpc-status"), "0");
  assert.equal(budget.reserved, 0);
  assert.equal(gate.state.maxInside, 1);
  assert.deepEqual(reservedInside, [held]);
});

Deno.test("createGrpcWebHandler lets concurrent calls in as the budget allows, and returns every byte", async () => {
  const budget = new BufferBudget({ maxBytes: 100_000, waitMs: 5_000 });
  let maxReserved = 0;
  const gate = gatedService(() => maxReserved = Math.max(maxReserved, budget.reserved));
  gate.open();
  const handler = createGrpcWebHandler({ service: gate.service, budget });
  const calls = Array.from({ length: 12 }, async () => {
    const response = await handler(
      grpcWebPost(UPLOAD_PATH, uploadFrame(new Uint8Array(30_000).fill(10))),
    );
    return (await trailerOf(response)).get("grpc-status");
  });
  assert.deepEqual(await Promise.all(calls), Array(12).fill("0"));
  assert.ok(maxReserved <= 100_000, `reserved ${maxReserved}`);
  assert.ok(gate.state.maxInside <= 3, `${gate.state.maxInside} calls held 30 kB each at once`);
  assert.equal(budget.reserved, 0);
});

Deno.test("createGrpcWebHandler counts grpc-web-text messages at their decoded size", async () => {
  const budget = new BufferBudget({ maxBytes: 1 << 20 });
  const reservedInside: number[] = [];
  const gate = gatedService(() => reservedInside.push(budget.reserved));
  gate.open();
  const handler = createGrpcWebHandler({ service: gate.service, budget });
  const body = uploadFrame(new Uint8Array(30_000).fill(10));
  const response = await handler(
    new Request(BASE + UPLOAD_PATH, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text" },
      body: base64(body),
    }),
  );
  const { trailer } = parseFrames(unbase64(await response.text()));
  assert.equal(trailer?.get("grpc-status"), "0");
  assert.deepEqual(reservedInside, [body.length - 5]);
  assert.equal(budget.reserved, 0);
});

Deno.test("createGrpcWebHandler releases the budget when clients go away mid-message", async (t) => {
  const budget = new BufferBudget({ maxBytes: 1 << 20 });
  const gate = gatedService();
  const handler = createGrpcWebHandler({ service: gate.service, budget });
  await t.step("over a socket", async () => {
    await using server = serve((request, info) => handler(request, info));
    const connections = await Promise.all(Array.from({ length: 5 }, async () => {
      const connection = await RawConnection.open(server.port);
      const whole = uploadFrame(new Uint8Array(64_000));
      await connection.write(
        `POST ${UPLOAD_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `Content-Type: application/grpc-web+proto\r\nContent-Length: ${whole.length}\r\n\r\n`,
      );
      await connection.write(whole.subarray(0, 1000));
      return connection;
    }));
    await eventually(() => budget.reserved >= 5 * 64_000, "every message to be reserved");
    for (const connection of connections) connection.close();
    await eventually(() => budget.reserved === 0, "the budget to be released");
  });
  await t.step("in-process, a body that fails", async () => {
    const whole = uploadFrame(new Uint8Array(64_000));
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(whole.subarray(0, 1000));
      },
      pull(controller) {
        controller.error(new Error("connection reset"));
      },
    });
    const response = await handler(grpcWebPost(UPLOAD_PATH, body));
    assert.notEqual((await trailerOf(response)).get("grpc-status"), "0");
    assert.equal(budget.reserved, 0);
  });
  assert.equal(gate.state.inside, 0);
});

Deno.test("createGrpcWebHandler answers an expired grpc-timeout with DEADLINE_EXCEEDED", async (t) => {
  const { service } = createFakeSalesService();
  const slow: SalesService = {
    ...service,
    // Like the real service: it notices the aborted signal and reports a cancellation.
    uploadCsv: (_request, ctx) =>
      new Promise((_, reject) =>
        ctx.signal.addEventListener("abort", () => {
          reject(new AppError(Status.CANCELLED, "The client cancelled the upload"));
        })
      ),
  };
  const handler = createGrpcWebHandler({ service: slow });
  await t.step("while the service works", async () => {
    const response = await handler(
      grpcWebPost(UPLOAD_PATH, uploadFrame(new Uint8Array(10)), { "grpc-timeout": "20m" }),
    );
    assert.equal((await trailerOf(response)).get("grpc-status"), "4");
  });
  await t.step("already on arrival", async () => {
    const response = await handler(
      grpcWebPost(DOWNLOAD_PATH, downloadRequestFrame(FAKE_RESULT_ID), { "grpc-timeout": "0n" }),
    );
    assert.equal((await trailerOf(response)).get("grpc-status"), "4");
  });
});

/** The frames of a gRPC-Web body with their flags. */
function framesWithFlags(body: Uint8Array): { flags: number; data: Uint8Array }[] {
  const frames = [];
  for (let offset = 0; offset < body.length;) {
    const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
    frames.push({ flags: body[offset], data: body.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return frames;
}

function compressedFrame(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const packed = gzipSync(message);
  const out = frame(packed);
  out[0] = 1;
  return out;
}

Deno.test("createGrpcWebHandler accepts and sends grpc-encoding: gzip", async (t) => {
  const { service } = createFakeSalesService();
  const bigResult = new TextEncoder().encode(
    "Department Name,Total Number of Sales\n" + "Toys,7\n".repeat(2000),
  );
  const budget = new BufferBudget({ maxBytes: 1 << 20 });
  const reservedInside: number[] = [];
  const handler = createGrpcWebHandler({
    service: {
      ...service,
      uploadCsv: (request, ctx) => {
        reservedInside.push(budget.reserved);
        return service.uploadCsv(request, ctx);
      },
      downloadResult: () => Promise.resolve({ data: bigResult }),
    },
    readMaxBytes: 256 * 1024,
    budget,
  });
  const csv = new TextEncoder().encode("a,b,1\n".repeat(10_000));
  const upload = toBinary(UploadRequestSchema, create(UploadRequestSchema, { data: csv }));

  await t.step("a gzip request message is inflated and counted at both sizes", async () => {
    const body = compressedFrame(upload);
    const response = await handler(grpcWebPost(UPLOAD_PATH, body, { "grpc-encoding": "gzip" }));
    const { messages, trailer } = parseFrames(new Uint8Array(await response.arrayBuffer()));
    assert.equal(trailer?.get("grpc-status"), "0");
    assert.equal(fromBinary(UploadResponseSchema, messages[0]).rows, 10_000n);
    assert.deepEqual(reservedInside, [body.length - 5 + upload.length]);
    assert.equal(budget.reserved, 0);
  });
  await t.step("grpc-web-text with gzip", async () => {
    const response = await handler(
      new Request(BASE + UPLOAD_PATH, {
        method: "POST",
        headers: { "content-type": "application/grpc-web-text", "grpc-encoding": "gzip" },
        body: base64(compressedFrame(upload)),
      }),
    );
    const { messages, trailer } = parseFrames(unbase64(await response.text()));
    assert.equal(trailer?.get("grpc-status"), "0");
    assert.equal(fromBinary(UploadResponseSchema, messages[0]).rows, 10_000n);
  });
  await t.step("a response is gzipped when the client accepts it", async () => {
    const response = await handler(
      grpcWebPost(DOWNLOAD_PATH, downloadRequestFrame(FAKE_RESULT_ID), {
        "grpc-accept-encoding": "gzip",
      }),
    );
    assert.equal(response.headers.get("grpc-encoding"), "gzip");
    const [message] = framesWithFlags(new Uint8Array(await response.arrayBuffer()));
    assert.equal(message.flags, 1);
    const decoded = fromBinary(DownloadResponseSchema, gunzipSync(message.data));
    assert.deepEqual(new Uint8Array(decoded.data), bigResult);
  });
  await t.step("and not otherwise", async () => {
    const response = await handler(
      grpcWebPost(DOWNLOAD_PATH, downloadRequestFrame(FAKE_RESULT_ID)),
    );
    assert.equal(response.headers.get("grpc-encoding"), null);
    const [message] = framesWithFlags(new Uint8Array(await response.arrayBuffer()));
    assert.equal(message.flags, 0);
  });
  await t.step("a message that inflates past readMaxBytes is refused", async () => {
    const bomb = compressedFrame(new Uint8Array(8 << 20));
    assert.ok(bomb.length < 16_384);
    const response = await handler(grpcWebPost(UPLOAD_PATH, bomb, { "grpc-encoding": "gzip" }));
    const trailer = await trailerOf(response);
    assert.equal(trailer.get("grpc-status"), "8");
    assert.match(decodeURIComponent(trailer.get("grpc-message") ?? ""), /MAX_MESSAGE_BYTES/);
  });
  await t.step("a gzip trailer that understates the size is caught while inflating", async () => {
    const lying = compressedFrame(upload);
    new DataView(lying.buffer).setUint32(lying.length - 4, 100, true);
    const response = await handler(grpcWebPost(UPLOAD_PATH, lying, { "grpc-encoding": "gzip" }));
    assert.equal((await trailerOf(response)).get("grpc-status"), "8");
  });
  await t.step("not gzip at all", async () => {
    const garbage = frame(new Uint8Array(64).fill(7));
    garbage[0] = 1;
    const response = await handler(grpcWebPost(UPLOAD_PATH, garbage, { "grpc-encoding": "gzip" }));
    assert.equal((await trailerOf(response)).get("grpc-status"), "3");
  });
  assert.equal(budget.reserved, 0);
});

Deno.test("createGrpcWebHandler tells the service the peer address of a call over a socket", async () => {
  const peers: (string | undefined)[] = [];
  const gate = gatedService((ctx) => peers.push(ctx.peer));
  gate.open();
  const handler = createGrpcWebHandler({ service: gate.service });
  await using server = serve((request, info) => handler(request, info));
  const client = createClient(
    SalesServiceDesc,
    createGrpcWebTransport({ baseUrl: `http://127.0.0.1:${server.port}` }),
  );
  await client.uploadCSV({ filename: "a.csv", data: new Uint8Array(10) });
  assert.equal(peers.length, 1);
  assert.match(peers[0] ?? "", /^127\.0\.0\.1:\d+$/);
});

Deno.test("createGrpcWebHandler GetResult describes a result and renews its signed URL, behind the token", async () => {
  await using signed = await startSignedSalesService("grpc_web_get_result_test_");
  const { store, downloadUrls, clock } = signed;
  const handler = createGrpcWebHandler({ service: signed.service, apiToken: TOKEN });
  const clientWith = (headers: Record<string, string>) =>
    createClient(
      SalesServiceDesc,
      createGrpcWebTransport({
        baseUrl: BASE,
        fetch: (input, init) => {
          const request = new Request(input, init);
          for (const [name, value] of Object.entries(headers)) request.headers.set(name, value);
          return handler(request);
        },
      }),
    );
  const client = clientWith({ authorization: `Bearer ${TOKEN}` });
  const csv = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\nToys,bad,4\n";
  const uploaded = await client.uploadCSV({
    data: new TextEncoder().encode(csv),
    filename: "q1.csv.gz",
  });
  const described = await client.getResult({ resultId: uploaded.resultId });
  assert.equal(described.resultId, uploaded.resultId);
  assert.equal(described.downloadUrl, uploaded.downloadUrl);
  assert.equal(described.filename, "q1.csv.gz");
  assert.equal(described.downloadFilename, "q1.result.csv");
  assert.equal(described.rows, 2n);
  assert.equal(described.badRows, 1n);
  assert.equal(described.departments, 1n);
  assert.deepEqual(
    described.badRowSamples.map(({ line, reason }) => ({ line, reason })),
    uploaded.badRowSamples.map(({ line, reason }) => ({ line, reason })),
  );
  assert.equal(described.sizeBytes, BigInt((await store.read(uploaded.resultId)).length));
  assert.equal(described.hasMetadata, true);
  assert.ok(Math.abs(Date.parse(described.createdAt) - Date.now()) < 60_000);

  clock.now += 120_000;
  const params = (url: string) => new URL(url).searchParams;
  assert.match(
    downloadUrls.verify(uploaded.resultId, params(uploaded.downloadUrl))!.message,
    /expired/,
  );
  const renewed = await client.getResult({ resultId: uploaded.resultId });
  assert.equal(downloadUrls.verify(uploaded.resultId, params(renewed.downloadUrl)), undefined);

  const codeOf = (promise: Promise<unknown>) =>
    promise.then(() => undefined, (error) => ConnectError.from(error).code);
  assert.equal(await codeOf(client.getResult({ resultId: "f".repeat(32) })), Code.NotFound);
  assert.equal(await codeOf(client.getResult({ resultId: "nope" })), Code.InvalidArgument);
  assert.equal(
    await codeOf(clientWith({}).getResult({ resultId: uploaded.resultId })),
    Code.Unauthenticated,
  );
});

Deno.test("createGrpcWebHandler uploads several files into one result with file_index, and signs its page", async () => {
  await using signed = await startSignedSalesService("grpc_web_files_test_");
  const handler = createGrpcWebHandler({ service: signed.service });
  const client = createClient(
    SalesServiceDesc,
    createGrpcWebTransport({
      baseUrl: BASE,
      fetch: (input, init) => handler(new Request(input, init)),
    }),
  );
  const upload = async (files: readonly TestFile[]) => {
    const { uploadId } = await client.startUpload({
      size: BigInt(sizeOf(files)),
      filenames: files.map((file) => file.name),
    });
    for (const { offset, fileIndex, data } of appends(files, 16)) {
      await client.appendUpload({ uploadId, offset: BigInt(offset), data, fileIndex });
    }
    return await client.finishUpload({ uploadId });
  };
  const expected = await expectedResult(THREE_FILES);
  const uploaded = await upload(THREE_FILES);
  assert.equal(uploaded.rows, BigInt(expected.rows));
  assert.deepEqual(
    uploaded.files.map((file) => [file.name, Number(file.rows), Number(file.badRows)]),
    expected.files.map((file) => [file.name, file.rows, file.badRows]),
  );
  assert.deepEqual(
    uploaded.badRowSamples.map((row) => [row.file, row.fileIndex, Number(row.line), row.raw]),
    expected.badRowSamples.map((row) => [row.file, row.fileIndex, row.line, row.raw]),
  );
  const csv = new TextDecoder().decode(await signed.store.read(uploaded.resultId));
  assert.equal(csv, expected.csv);
  const described = await client.getResult({ resultId: uploaded.resultId });
  assert.equal(described.filename, "north.csv");
  assert.equal(described.downloadFilename, "north-and-2-more.result.csv");
  assert.deepEqual(described.files, uploaded.files);
  const page = new URL(described.pagePath, BASE);
  assert.equal(page.pathname, `/r/${uploaded.resultId}`);
  assert.equal(signed.downloadUrls.verifyPage(uploaded.resultId, page.searchParams), undefined);

  const failure = await upload(CORRUPT_SECOND).then(() => undefined, ConnectError.from);
  assert.equal(failure?.code, Code.InvalidArgument);
  assert.match(failure?.rawMessage ?? "", /broken\.csv\.gz/);
});
