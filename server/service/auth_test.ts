import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import { withAuth } from "./auth.ts";
import type {
  CallContext,
  ResultDescription,
  SalesService,
  UploadChunk,
  UploadResponse,
} from "./types.ts";

const TOKEN = "s3cret-T0ken";

function contextWith(authorization?: string): CallContext {
  return {
    signal: new AbortController().signal,
    header: (name) => (name === "authorization" ? authorization : undefined),
  };
}

const RESPONSE: UploadResponse = {
  resultId: "0123456789abcdef0123456789abcdef",
  downloadUrl: "http://localhost:8080/results/0123456789abcdef0123456789abcdef.csv",
  rows: 1,
  badRows: 0,
  departments: 1,
  elapsedSec: 0,
  badRowSamples: [],
  files: [{ name: "a.csv", rows: 1, badRows: 0, departments: 1 }],
  pagePath: "/r/0123456789abcdef0123456789abcdef",
};

const DESCRIPTION: ResultDescription = {
  ...RESPONSE,
  filename: "a.csv",
  downloadFilename: "a.result.csv",
  createdAt: new Date(0),
  sizeBytes: 40,
  hasMetadata: true,
};

/** A service that records which methods ran and how many stream chunks it read. */
function recordingService() {
  const calls: string[] = [];
  let chunksRead = 0;
  const service: SalesService = {
    uploadCsv: () => (calls.push("uploadCsv"), Promise.resolve(RESPONSE)),
    uploadCsvStream: async (chunks) => {
      calls.push("uploadCsvStream");
      for await (const _ of chunks) chunksRead++;
      return RESPONSE;
    },
    downloadResult:
      () => (calls.push("downloadResult"), Promise.resolve({ data: new Uint8Array() })),
    startUpload:
      () => (calls.push("startUpload"), Promise.resolve({ uploadId: "u", chunkSize: 1 })),
    appendUpload:
      () => (calls.push("appendUpload"),
        Promise.resolve({ committedOffset: 0, rows: 0, badRows: 0 })),
    finishUpload: () => (calls.push("finishUpload"), Promise.resolve(RESPONSE)),
    cancelUpload: () => (calls.push("cancelUpload"), Promise.resolve({})),
    getResult: () => (calls.push("getResult"), Promise.resolve(DESCRIPTION)),
  };
  return { service, calls, chunksRead: () => chunksRead };
}

/** Every method of `service`, called once with `ctx`. */
function callEach(service: SalesService, ctx: CallContext): [string, Promise<unknown>][] {
  async function* chunks(): AsyncIterable<UploadChunk> {
    yield { data: new Uint8Array([65, 10]), filename: "a.csv" };
  }
  return [
    ["uploadCsv", service.uploadCsv({ data: new Uint8Array(), filename: "a.csv" }, ctx)],
    ["uploadCsvStream", service.uploadCsvStream(chunks(), ctx)],
    ["downloadResult", service.downloadResult({ resultId: RESPONSE.resultId }, ctx)],
    ["startUpload", service.startUpload({ filename: "a.csv", size: 0 }, ctx)],
    [
      "appendUpload",
      service.appendUpload({ uploadId: "u", offset: 0, data: new Uint8Array() }, ctx),
    ],
    ["finishUpload", service.finishUpload({ uploadId: "u" }, ctx)],
    ["cancelUpload", service.cancelUpload({ uploadId: "u" }, ctx)],
    ["getResult", service.getResult({ resultId: RESPONSE.resultId }, ctx)],
  ];
}

Deno.test("withAuth returns the service itself when no token is configured", () => {
  const { service } = recordingService();
  assert.equal(withAuth(service, undefined), service);
  assert.equal(withAuth(service, ""), service);
});

Deno.test("withAuth refuses every method without the right bearer token, before the service runs", async (t) => {
  const cases = [
    { name: "missing", authorization: undefined, message: /requires an access token/ },
    { name: "empty", authorization: "  ", message: /requires an access token/ },
    { name: "another scheme", authorization: `Basic ${TOKEN}`, message: /Malformed authorization/ },
    { name: "bare token", authorization: TOKEN, message: /Malformed authorization/ },
    { name: "Bearer without token", authorization: "Bearer", message: /Malformed authorization/ },
    { name: "wrong token", authorization: "Bearer s3cret-T0kem", message: /token is not valid/ },
    { name: "prefix of the token", authorization: "Bearer s3cret", message: /not valid/ },
    { name: "token plus more", authorization: `Bearer ${TOKEN}x`, message: /not valid/ },
    { name: "other case", authorization: `Bearer ${TOKEN.toLowerCase()}`, message: /not valid/ },
    { name: "two tokens", authorization: `Bearer ${TOKEN} ${TOKEN}`, message: /Malformed/ },
  ];
  for (const { name, authorization, message } of cases) {
    await t.step(name, async () => {
      const { service, calls, chunksRead } = recordingService();
      const guarded = withAuth(service, TOKEN);
      for (const [method, call] of callEach(guarded, contextWith(authorization))) {
        await assert.rejects(call, (error) => {
          assert.ok(error instanceof AppError, `${method}: ${error}`);
          assert.equal(error.code, Status.UNAUTHENTICATED, method);
          assert.match(error.message, message);
          assert.ok(!error.message.includes(TOKEN), "the message never echoes the token");
          return true;
        });
      }
      assert.deepEqual(calls, []);
      assert.equal(chunksRead(), 0, "a refused stream is not read");
    });
  }
});

Deno.test("withAuth passes calls with the right token through to the service", async () => {
  const { service, calls, chunksRead } = recordingService();
  const guarded = withAuth(service, TOKEN);
  for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `Bearer  ${TOKEN} `]) {
    calls.length = 0;
    for (const [, call] of callEach(guarded, contextWith(authorization))) await call;
    assert.deepEqual(calls, [
      "uploadCsv",
      "uploadCsvStream",
      "downloadResult",
      "startUpload",
      "appendUpload",
      "finishUpload",
      "cancelUpload",
      "getResult",
    ]);
  }
  assert.equal(chunksRead(), 3);
});
