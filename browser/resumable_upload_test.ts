import assert from "node:assert/strict";
import { appendChunks, type AppendProgress, withRetry } from "./resumable_upload.ts";

/** A server that keeps bytes, acknowledges repeats, and loses the replies it is told to. */
function fakeServer(options: { loseReplies?: number[]; commitShort?: boolean } = {}) {
  let committed = 0;
  let calls = 0;
  const received: number[] = [];
  const append = (offset: number, chunk: Uint8Array): Promise<AppendProgress> => {
    calls++;
    if (offset === committed) {
      const length = options.commitShort ? Math.ceil(chunk.length / 2) : chunk.length;
      received.push(...chunk.subarray(0, length));
      committed += length;
    } else if (offset + chunk.length !== committed) {
      return Promise.reject(new Error(`offset ${offset} does not match ${committed}`));
    }
    if (options.loseReplies?.includes(calls)) return Promise.reject(new Error("lost reply"));
    return Promise.resolve({ committedOffset: committed, rows: 0, badRows: 0 });
  };
  return { append, received, calls: () => calls };
}

const BYTES = Uint8Array.from({ length: 10 }, (_, i) => i);
const slices = (size: number) => (offset: number) =>
  Promise.resolve(offset < BYTES.length ? BYTES.slice(offset, offset + size) : undefined);

Deno.test("appendChunks retries a chunk whose reply was lost without sending it twice", async () => {
  const server = fakeServer({ loseReplies: [2, 3] });
  const retried: number[] = [];
  const offset = await appendChunks({
    next: slices(4),
    sizeOf: (chunk) => chunk.length,
    append: server.append,
    retry: {
      attempts: 3,
      retryDelayMs: 1,
      isRetryable: () => true,
      onRetry: ({ attempt }) => retried.push(attempt),
    },
  });
  assert.equal(offset, 10);
  assert.deepEqual(server.received, [...BYTES]);
  assert.deepEqual(retried, [2, 3]);
  assert.equal(server.calls(), 5);
});

Deno.test("appendChunks gives up after the last attempt, and on errors that are not retryable", async () => {
  const lost = fakeServer({ loseReplies: [1, 2] });
  await assert.rejects(
    appendChunks({
      next: slices(4),
      sizeOf: (chunk) => chunk.length,
      append: lost.append,
      retry: { attempts: 2, retryDelayMs: 1, isRetryable: () => true },
    }),
    /lost reply/,
  );
  const refused = fakeServer({ loseReplies: [1] });
  await assert.rejects(
    appendChunks({ next: slices(4), sizeOf: (chunk) => chunk.length, append: refused.append }),
    /lost reply/,
  );
  assert.equal(refused.calls(), 1);
});

Deno.test("appendChunks resumes from a short commit only when chunks need not be whole", async () => {
  const seeking = fakeServer({ commitShort: true });
  const offset = await appendChunks({
    next: slices(4),
    sizeOf: (chunk) => chunk.length,
    append: seeking.append,
    wholeChunks: () => false,
  });
  assert.equal(offset, 10);
  assert.deepEqual(seeking.received, [...BYTES]);
  await assert.rejects(
    appendChunks({
      next: slices(4),
      sizeOf: (chunk) => chunk.length,
      append: fakeServer({ commitShort: true }).append,
      commitError: (sent, committed) => new Error(`short ${sent} ${committed}`),
    }),
    /^Error: short 0 2$/,
  );
});

Deno.test("appendChunks stops where onAppended asks", async () => {
  const server = fakeServer();
  const offset = await appendChunks({
    next: slices(3),
    sizeOf: (chunk) => chunk.length,
    append: server.append,
    onAppended: (_chunk, progress) => progress.committedOffset >= 6 ? "stop" : undefined,
  });
  assert.equal(offset, 6);
  assert.equal(server.calls(), 2);
});

Deno.test("withRetry stops waiting when its signal aborts", async () => {
  const controller = new AbortController();
  const failing = withRetry(() => Promise.reject(new Error("down")), {
    attempts: 5,
    retryDelayMs: 60_000,
    isRetryable: () => true,
    signal: controller.signal,
    onRetry: () => controller.abort(new Error("cancelled")),
  });
  await assert.rejects(failing, /cancelled/);
});
