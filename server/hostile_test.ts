/**
 * Runs the hostile-input corpus (`cases.ts`) through whole servers (`startServer` on port 0, a
 * grpc-js client, and the web page's gRPC-Web client for the browser path) and checks, for every
 * case and path: the exact outcome; that another client's upload succeeds while and after the
 * hostile one runs; and that a failed upload leaves no result file, temp file or upload state.
 * The cases marked `boundedMemory` also run against a server child process, whose peak RSS is
 * read from `/proc`. Sizes are the corpus's `"test"` scale; `bench/hostile_bench.ts` runs the full
 * ones.
 */

import assert from "node:assert/strict";
// The web page's own upload client: the browser path is tested with the code the browser runs.
import { appendBlob, createGrpcWebSalesClient, uploadFile } from "../browser/upload_client.ts";
import { loadConfig } from "./config.ts";
import { AppError, type Status } from "./errors.ts";
import { GrpcSalesClient } from "./grpc/sales_client.ts";
import { type RunningServer, startServer } from "./main.ts";
import type { UploadResponse } from "./service/types.ts";
import {
  type ErrorOutcome,
  expectedOutcome,
  gzipBomb,
  HOSTILE_CASES,
  type HostileInput,
  noLineBreak,
  type Outcome,
  outcomeMismatches,
  RESULT_HEADER,
  type ScenarioCase,
  statusName,
  unterminatedQuote,
  unterminatedQuoteOutcome,
  type UploadCase,
  type UploadPath,
} from "./_test_hostile_cases.ts";
import { startServerProcess } from "./_test_server_process.ts";
import { loopbackEnv } from "./_test_loopback_env.ts";
import { eventually } from "./_test_eventually.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MB = 1e6;
const MIB = 1024 * 1024;

/** What another client uploads while a hostile upload runs: small enough for every limit here. */
const BYSTANDER_CSV = encoder.encode("Toys,2024-01-01,1\n");
const BYSTANDER_RESULT = RESULT_HEADER + "Toys,1\n";

/** A whole server on loopback with its own storage, and what the checks need. */
interface TestServer extends AsyncDisposable {
  server: RunningServer;
  client: GrpcSalesClient;
  /** A second connection, for the other clients the server must keep serving. */
  bystander: GrpcSalesClient;
  webUrl: string;
  storageDir: string;
  /** Results the test saw stored: the only files allowed in `results/`. */
  stored: Set<string>;
}

async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const storageDir = await Deno.makeTempDir({ prefix: "hostile_test_" });
  const server = await startServer(
    loadConfig({
      ...loopbackEnv(storageDir),
      ...env,
    }),
    { log: () => {} },
  );
  const client = new GrpcSalesClient(`127.0.0.1:${server.grpc.port}`);
  const bystander = new GrpcSalesClient(`127.0.0.1:${server.grpc.port}`);
  return {
    server,
    client,
    bystander,
    webUrl: `http://127.0.0.1:${server.web.port}`,
    storageDir,
    stored: new Set(),
    async [Symbol.asyncDispose]() {
      client.close();
      bystander.close();
      await server.shutdown(2_000);
      await Deno.remove(storageDir, { recursive: true });
    },
  };
}

/** The input's bytes re-cut into pieces of exactly `size` (the last may be shorter). */
function* rechunk(pieces: Iterable<Uint8Array>, size: number): Iterable<Uint8Array> {
  let pending = new Uint8Array(size);
  let filled = 0;
  for (const piece of pieces) {
    let offset = 0;
    while (offset < piece.length) {
      const take = Math.min(size - filled, piece.length - offset);
      pending.set(piece.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === size) {
        yield pending;
        pending = new Uint8Array(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield pending.subarray(0, filled);
}

function wholeInput(input: HostileInput): Uint8Array {
  const bytes = new Uint8Array(input.size);
  let offset = 0;
  for (const piece of input.chunks()) {
    bytes.set(piece, offset);
    offset += piece.length;
  }
  assert.equal(offset, input.size, "the input's size matches its bytes");
  return bytes;
}

/** What an upload ended with, whatever the path: the response and the result CSV, or the error. */
type Settled =
  | { response: UploadResponse; resultCsv: string }
  | { error: AppError };

async function settle(work: () => Promise<Settled>): Promise<Settled> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AppError) return { error };
    throw error;
  }
}

/** Uploads `input` along `path`, as a client of that path does. */
function upload(
  s: TestServer,
  testCase: UploadCase,
  path: UploadPath,
  input: HostileInput,
): Promise<Settled> {
  const filename = `${testCase.name}.csv`;
  const withCsv = async (response: UploadResponse): Promise<Settled> => ({
    response,
    resultCsv: decoder.decode(await s.client.downloadResult(response.resultId)),
  });
  return settle(async () => {
    switch (path) {
      case "unary":
        return withCsv(await s.client.upload(wholeInput(input), filename));
      case "stream": {
        const pieces = testCase.streamChunkBytes === undefined
          ? input.chunks()
          : rechunk(input.chunks(), testCase.streamChunkBytes);
        return withCsv(await s.client.uploadStream(pieces, filename));
      }
      case "chunked":
      case "chunked-unsized": {
        const declared = path === "chunked" ? input.size : 0;
        const { uploadId, chunkSize } = await s.client.startUpload(filename, declared);
        let offset = 0;
        for (const chunk of rechunk(input.chunks(), testCase.appendChunkBytes ?? chunkSize)) {
          offset = (await s.client.appendUpload(uploadId, offset, chunk)).committedOffset;
        }
        return withCsv(await s.client.finishUpload(uploadId));
      }
      case "browser": {
        const file = new File([...input.chunks()] as BlobPart[], filename);
        try {
          const summary = await uploadFile(createGrpcWebSalesClient(s.webUrl), file, {
            attempts: 1,
          });
          return { response: summary, resultCsv: decoder.decode(summary.resultCsv) };
        } catch (error) {
          // The page's UploadError carries connect's error, whose code is the gRPC status.
          const cause = (error as Error).cause as { code?: number; rawMessage?: string };
          if (typeof cause?.code !== "number") throw error;
          throw new AppError(cause.code as Status, cause.rawMessage ?? "", { cause });
        }
      }
    }
  });
}

function assertOutcome(settled: Settled, expected: Outcome): void {
  assert.deepEqual(outcomeMismatches(settled, expected), []);
}

/** Another client's small upload; the server must serve it whatever else is going on. */
async function bystanderUpload(s: TestServer): Promise<void> {
  const response = await s.bystander.uploadStream([BYSTANDER_CSV], "bystander.csv");
  assert.equal(response.rows, 1);
  s.stored.add(response.resultId);
  assert.equal(
    decoder.decode(await s.bystander.downloadResult(response.resultId)),
    BYSTANDER_RESULT,
  );
}

/** No upload state, no temp file, and no result the test did not see stored (CSV and metadata). */
async function assertNothingLeft(s: TestServer): Promise<void> {
  await eventually(() => s.server.service.uploadsInProgress === 0, "no upload in progress", 10_000);
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${s.storageDir}/results`)) {
    files.push(entry.name);
  }
  assert.deepEqual(
    files.sort(),
    [...s.stored].flatMap((id) => [`${id}.csv`, `${id}.json`]).sort(),
  );
}

const uploadCases = HOSTILE_CASES.filter((c): c is UploadCase => c.kind === "upload");
const scenario = (name: string) =>
  HOSTILE_CASES.find((c): c is ScenarioCase => c.kind === "scenario" && c.name === name)!;

for (const testCase of uploadCases) {
  Deno.test({
    name: `HOSTILE_CASES "${testCase.name}" ends as expected on ${testCase.paths.join(", ")}`,
    async fn(t) {
      await using s = await startTestServer(testCase.env?.("test"));
      const input = testCase.input("test");
      for (const path of testCase.paths) {
        await t.step(path, async () => {
          const expected = expectedOutcome(testCase, path, "test");
          // Another client uploads while the hostile upload runs, and again after it.
          const [settled] = await Promise.all([
            upload(s, testCase, path, input),
            bystanderUpload(s),
          ]);
          if ("response" in settled) s.stored.add(settled.response.resultId);
          assertOutcome(settled, expected);
          await bystanderUpload(s);
          assert.equal(await s.client.checkHealth(), "SERVING");
          await assertNothingLeft(s);
        });
      }
    },
  });
}

Deno.test({
  name: "HOSTILE_CASES MAX_CONCURRENT_UPLOADS refuses one more upload on every path with a retry " +
    "hint, and serves the rest",
  async fn(t) {
    const { env, expected } = scenario("MAX_CONCURRENT_UPLOADS");
    await using s = await startTestServer(env("test"));
    const earlier = await s.client.upload(BYSTANDER_CSV, "earlier.csv");
    s.stored.add(earlier.resultId);

    // Three uploads in progress: two streams held open halfway, one chunked upload started.
    const csv = (name: string) =>
      encoder.encode(
        Array.from({ length: 2000 }, (_, i) => `${name},2024-01-01,${i % 10}\n`).join(""),
      );
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    async function* heldOpen(bytes: Uint8Array) {
      yield bytes.subarray(0, bytes.length >> 1);
      await gate;
      yield bytes.subarray(bytes.length >> 1);
    }
    const [a, b, c] = [csv("A"), csv("B"), csv("C")];
    const streamA = s.client.uploadStream(heldOpen(a), "a.csv");
    const streamB = s.bystander.uploadStream(heldOpen(b), "b.csv");
    const chunkedC = await s.client.startUpload("c.csv", c.length);
    await s.client.appendUpload(chunkedC.uploadId, 0, c.subarray(0, 1000));
    await eventually(
      () => s.server.service.uploadsInProgress === 3,
      "three uploads in progress",
      10_000,
    );

    const fourth: Record<UploadPath, () => Promise<unknown>> = {
      unary: () => s.client.upload(BYSTANDER_CSV, "d.csv"),
      stream: () => s.client.uploadStream([BYSTANDER_CSV], "d.csv"),
      chunked: () => s.client.startUpload("d.csv", BYSTANDER_CSV.length),
      "chunked-unsized": () => s.client.startUpload("d.csv", 0),
      browser: () =>
        uploadFile(createGrpcWebSalesClient(s.webUrl), new File([BYSTANDER_CSV], "d.csv"), {
          attempts: 1,
        }),
    };
    for (const [path, call] of Object.entries(fourth)) {
      await t.step(`a fourth upload (${path}) is refused with a retry hint`, async () => {
        const error = await call().then(
          () => assert.fail("the fourth upload was accepted"),
          (e) => e,
        );
        const [trailer, value] = expected.trailer!;
        if (path === "browser") {
          const cause = error.cause as { code: number; rawMessage: string; metadata: Headers };
          assert.equal(statusName(cause.code), expected.status);
          assert.match(cause.rawMessage, expected.message);
          assert.equal(cause.metadata.get(trailer), value);
        } else {
          assert.ok(error instanceof AppError, String(error));
          assert.equal(statusName(error.code), expected.status);
          assert.match(error.message, expected.message);
          const metadata = (error.cause as { metadata?: { get(key: string): unknown[] } })
            .metadata;
          assert.deepEqual(metadata?.get(trailer), [value]);
        }
      });
    }

    await t.step("downloads and health checks go on meanwhile", async () => {
      assert.equal(
        decoder.decode(await s.bystander.downloadResult(earlier.resultId)),
        BYSTANDER_RESULT,
      );
      assert.equal(await s.bystander.checkHealth(), "SERVING");
      assert.equal(s.server.service.uploadsInProgress, 3);
    });

    await t.step(
      "the three uploads finish with correct results, then a new one succeeds",
      async () => {
        release();
        await s.client.appendUpload(chunkedC.uploadId, 1000, c.subarray(1000));
        const results = await Promise.all([
          streamA,
          streamB,
          s.client.finishUpload(chunkedC.uploadId),
        ]);
        for (
          const [response, name] of [[results[0], "A"], [results[1], "B"], [
            results[2],
            "C",
          ]] as const
        ) {
          s.stored.add(response.resultId);
          assert.equal(response.rows, 2000);
          assert.equal(
            decoder.decode(await s.client.downloadResult(response.resultId)),
            `${RESULT_HEADER}${name},9000\n`,
          );
        }
        await bystanderUpload(s);
        await assertNothingLeft(s);
      },
    );
  },
});

Deno.test({
  name: "HOSTILE_CASES max message size refuses an AppendUpload too big on both transports, and " +
    "the upload goes on",
  async fn() {
    const maxMessage = HOSTILE_CASES.find((c) => c.name === "max message size") as UploadCase;
    await using s = await startTestServer(maxMessage.env!("test"));
    const tooBig = new Uint8Array(100 * 1024).fill(0x20);
    const { uploadId } = await s.client.startUpload("big-append.csv", 0);
    const grpcError = await s.client.appendUpload(uploadId, 0, tooBig).then(
      () => assert.fail("accepted over gRPC"),
      (error) => error,
    );
    assert.equal(statusName(grpcError.code), "RESOURCE_EXHAUSTED");
    const webError = await appendBlob(createGrpcWebSalesClient(s.webUrl), {
      uploadId,
      offset: 0,
      chunk: new Blob([tooBig]),
    }).then(() => assert.fail("accepted over gRPC-Web"), (error) => error);
    assert.equal(statusName(webError.code), "RESOURCE_EXHAUSTED");
    assert.match(webError.rawMessage, /larger than MAX_MESSAGE_BYTES \(65536 bytes\)/);
    // Nothing of the refused messages was counted: the upload resumes at offset 0.
    const row = encoder.encode("Toys,2024-01-01,3\n");
    assert.equal((await s.client.appendUpload(uploadId, 0, row)).committedOffset, row.length);
    const response = await s.client.finishUpload(uploadId);
    s.stored.add(response.resultId);
    assert.equal(
      decoder.decode(await s.client.downloadResult(response.resultId)),
      `${RESULT_HEADER}Toys,3\n`,
    );
    await assertNothingLeft(s);
  },
});

Deno.test({
  name: "HOSTILE_CASES upload idle expiry frees an idle chunked upload and spares an active one",
  async fn() {
    const { env, expected } = scenario("upload idle expiry");
    await using s = await startTestServer(env("test"));
    const row = encoder.encode("Toys,2024-01-01,1\n");
    const idle = await s.client.startUpload("idle.csv", 0);
    await s.client.appendUpload(idle.uploadId, 0, row);
    const active = await s.client.startUpload("active.csv", 0);
    let offset = 0;
    // The active upload appends a row every 100 ms, well inside the timeout, until the idle one
    // has expired (then only it is left in progress).
    while (s.server.service.uploadsInProgress === 2) {
      offset = (await s.client.appendUpload(active.uploadId, offset, row)).committedOffset;
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(offset < 600 * row.length, "the idle upload did not expire within a minute");
    }
    assert.equal(s.server.service.uploadsInProgress, 1);
    for (
      const call of [
        () => s.client.appendUpload(idle.uploadId, row.length, row),
        () => s.client.finishUpload(idle.uploadId),
      ]
    ) {
      const error = await call().then(() => assert.fail("the expired upload answered"), (e) => e);
      assert.ok(error instanceof AppError);
      assert.equal(statusName(error.code), expected.status);
      assert.match(error.message, expected.message);
    }
    const response = await s.client.finishUpload(active.uploadId);
    s.stored.add(response.resultId);
    assert.equal(response.rows, offset / row.length);
    await assertNothingLeft(s);
  },
});

/**
 * Inputs big enough that holding even half of them would show plainly in the server's RSS: a
 * streaming server grows by a few tens of MB at most (HTTP/2 windows, message buffers, garbage not
 * yet collected), and less once warmed up. `processedBytes` is what the server must get through;
 * the gzip bomb's is the 512 MiB it inflates before MAX_UPLOAD_BYTES stops it.
 */
const MEMORY_RUNS: {
  name: string;
  input: HostileInput;
  processedBytes: number;
  expected: Outcome;
}[] = [
  {
    name: "200 MB without a line break",
    input: noLineBreak(256 * MB),
    processedBytes: 256 * MB,
    expected: { rows: 1, badRows: 1, departments: 0, resultCsv: RESULT_HEADER },
  },
  {
    name: "unterminated quote at the start of a 100 MB file",
    input: unterminatedQuote(128 * MB),
    processedBytes: 128 * MB,
    expected: unterminatedQuoteOutcome(128 * MB),
  },
  {
    name: "gzip bomb",
    input: gzipBomb(1024 * MIB),
    processedBytes: 512 * MIB,
    expected: {
      status: "RESOURCE_EXHAUSTED",
      message: /^Upload too large: the limit is 536870912 bytes \(after decompression\)$/,
    } satisfies ErrorOutcome,
  },
];

Deno.test({
  name:
    "HOSTILE_CASES marked boundedMemory grow the server's peak RSS by less than half their size",
  async fn(t) {
    const marked = uploadCases.filter((c) => c.boundedMemory).map((c) => c.name).sort();
    assert.deepEqual(marked, MEMORY_RUNS.map((run) => run.name).sort(), "every marked case runs");
    await using server = await startServerProcess({ MAX_UPLOAD_BYTES: String(512 * MIB) });
    const client = new GrpcSalesClient(server.grpcAddress);
    try {
      const run = async (input: HostileInput): Promise<Settled> =>
        await settle(async () => {
          const response = await client.uploadStream(input.chunks(), "hostile.csv");
          return {
            response,
            resultCsv: decoder.decode(await client.downloadResult(response.resultId)),
          };
        });
      // Warm up each kind, so code, buffers and the heap's steady size exist before measuring.
      await run(noLineBreak(64 * MB));
      await run(unterminatedQuote(16 * MB));
      await run(gzipBomb(16 * MIB));
      for (const { name, input, processedBytes, expected } of MEMORY_RUNS) {
        await t.step(name, async () => {
          server.resetPeak();
          const before = server.memory().rssBytes;
          assertOutcome(await run(input), expected);
          const growth = server.memory().peakBytes - before;
          const mb = (bytes: number, digits = 1) => (bytes / MB).toFixed(digits);
          console.log(
            `  ${name}: ${mb(input.size, 0)} MB sent, ${mb(processedBytes, 0)} MB processed, ` +
              `server peak RSS ${mb(server.memory().peakBytes)} MB (+${mb(growth)} MB)`,
          );
          assert.ok(
            growth < processedBytes / 2,
            `the server's peak RSS grew by ${(growth / MB).toFixed(1)} MB`,
          );
          assert.equal(await client.checkHealth(), "SERVING");
        });
      }
    } finally {
      client.close();
    }
  },
});
