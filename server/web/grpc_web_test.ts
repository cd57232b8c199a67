import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  DownloadRequestSchema,
  DownloadResponseSchema,
  SalesService as SalesServiceDesc,
} from "../gen/sales_pb.ts";
import { createGrpcWebHandler, isGrpcWebRequest } from "./grpc_web.ts";
import {
  createFakeSalesService,
  FAKE_RESULT_CSV,
  FAKE_RESULT_ID,
} from "./testdata/fake_sales_service.ts";

const BASE = "http://localhost:3000";
const DOWNLOAD_PATH = "/sales.v1.SalesService/DownloadResult";

function setup(options: { corsOrigins?: string[]; readMaxBytes?: number } = {}) {
  const { service, log } = createFakeSalesService({ chunkSize: 8 });
  const handler = createGrpcWebHandler({ service, ...options });
  // The handler must only ever see requests the web app routes to it.
  const route = (request: Request) => {
    assert.ok(isGrpcWebRequest(request), `${request.method} ${request.url} is not gRPC-Web`);
    return handler(request);
  };
  const transport = createGrpcWebTransport({
    baseUrl: BASE,
    fetch: (input, init) => route(new Request(input, init)),
  });
  return { log, route, client: createClient(SalesServiceDesc, transport) };
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
  const { client } = setup();
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
    },
  ];
  for (const { name, call, code, message } of cases) {
    await t.step(name, async () => {
      const originalError = console.error;
      console.error = () => {}; // the unexpected case is logged on purpose
      try {
        await assert.rejects(call, (error: unknown) => {
          assert.ok(error instanceof ConnectError);
          assert.equal(error.code, code);
          assert.match(error.rawMessage, message);
          return true;
        });
      } finally {
        console.error = originalError;
      }
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
  for (const header of ["content-type", "x-grpc-web", "authorization"]) {
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

Deno.test("isGrpcWebRequest tells gRPC-Web calls and their preflights from page requests", () => {
  const yes = [
    new Request(BASE + DOWNLOAD_PATH, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
    }),
    new Request(BASE + DOWNLOAD_PATH, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text" },
    }),
    new Request(BASE + DOWNLOAD_PATH, {
      method: "OPTIONS",
      headers: { "access-control-request-method": "POST" },
    }),
  ];
  const no = [
    new Request(BASE + "/"),
    new Request(BASE + "/static/styles.css"),
    new Request(BASE + "/", { method: "POST", headers: { "content-type": "text/plain" } }),
    new Request(BASE + "/", {
      method: "OPTIONS",
      headers: { "access-control-request-method": "POST" },
    }),
  ];
  for (const request of yes) assert.ok(isGrpcWebRequest(request), request.url);
  for (const request of no) assert.ok(!isGrpcWebRequest(request), request.url);
});
