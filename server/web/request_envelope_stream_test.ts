import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { ConnectError } from "@connectrpc/connect";
import { BufferBudget } from "../service/buffer_budget.ts";
import { concatBytes, randomPieces } from "../_test_bytes.ts";
import { seededRandom as seeded } from "../_test_mulberry32.ts";
import { consistently, eventually } from "../_test_eventually.ts";
import { RequestEnvelopeStream } from "./request_envelope_stream.ts";

function envelope(message: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** Reads `stream` through, noting the budget each time a piece comes out. */
async function drain(stream: ReadableStream<Uint8Array>, budget: BufferBudget) {
  const out: Uint8Array[] = [];
  const reservedSeen: number[] = [];
  for await (const piece of stream) {
    out.push(piece);
    reservedSeen.push(budget.reserved);
  }
  return { bytes: concatBytes(out), reservedSeen };
}

Deno.test("RequestEnvelopeStream passes messages through unchanged, however the body is cut", async () => {
  const random = seeded(7);
  for (let round = 0; round < 50; round++) {
    const messages = Array.from(
      { length: 1 + Math.floor(random() * 4) },
      () => new Uint8Array(Math.floor(random() * 40)).map(() => Math.floor(random() * 256)),
    );
    const body = concatBytes(messages.map((message) => envelope(message)));
    const budget = new BufferBudget({ maxBytes: 1000 });
    const envelopes = new RequestEnvelopeStream({ budget, readMaxBytes: 1000 });
    const { bytes, reservedSeen } = await drain(
      ReadableStream.from(randomPieces(body, 11, random)).pipeThrough(envelopes),
      budget,
    );
    assert.deepEqual(bytes, body);
    // Only the message being read is held, never two at once.
    const largest = Math.max(...messages.map((message) => message.length));
    assert.ok(reservedSeen.every((reserved) => reserved <= largest), String(reservedSeen));
    envelopes.release();
    assert.equal(budget.reserved, 0);
  }
});

Deno.test("RequestEnvelopeStream refuses a message longer than readMaxBytes before reserving it", async () => {
  const budget = new BufferBudget({ maxBytes: 1 << 30 });
  const envelopes = new RequestEnvelopeStream({ budget, readMaxBytes: 100 });
  const prefix = new Uint8Array([0, 0xff, 0xff, 0xff, 0xff]);
  await assert.rejects(
    () => drain(ReadableStream.from([prefix]).pipeThrough(envelopes), budget),
    (error: unknown) =>
      error instanceof ConnectError && error.code === 8 &&
      /4294967295 bytes is larger than MAX_MESSAGE_BYTES \(100 bytes\)/.test(error.rawMessage),
  );
  assert.equal(budget.reserved, 0);
});

Deno.test("RequestEnvelopeStream passes nothing of a message on until its bytes are reserved", async () => {
  const budget = new BufferBudget({ maxBytes: 100, waitMs: 5_000 });
  const other = await budget.reserve(60);
  const envelopes = new RequestEnvelopeStream({ budget, readMaxBytes: 100 });
  const reader = ReadableStream.from([envelope(new Uint8Array(50))]).pipeThrough(envelopes)
    .getReader();
  let passed = false;
  const first = reader.read().then((result) => {
    passed = true;
    return result;
  });
  await eventually(() => budget.waiting === 1, "the message to wait for room");
  assert.equal(passed, false);
  other.release();
  const { value } = await first;
  assert.equal(value?.length, 5);
  assert.equal(budget.reserved, 50);
  await reader.cancel();
  envelopes.release();
  assert.equal(budget.reserved, 0);
});

Deno.test("RequestEnvelopeStream inflates gzip messages within the limits, reserving both sizes", async () => {
  const message = new TextEncoder().encode("Toys,2024-01-02,3\n".repeat(500));
  const packed = new Uint8Array(gzipSync(message));
  const body = envelope(packed, 1);
  const budget = new BufferBudget({ maxBytes: 1 << 20 });
  const envelopes = new RequestEnvelopeStream({ budget, readMaxBytes: 1 << 20, gzip: true });
  const { bytes, reservedSeen } = await drain(
    ReadableStream.from(randomPieces(body, 11, seeded(3))).pipeThrough(envelopes),
    budget,
  );
  assert.deepEqual(bytes, envelope(message));
  assert.equal(reservedSeen.at(-1), packed.length + message.length);
  envelopes.release();

  const small = new RequestEnvelopeStream({ budget, readMaxBytes: 1000, gzip: true });
  await assert.rejects(
    () => drain(ReadableStream.from([body]).pipeThrough(small), budget),
    (error: unknown) => error instanceof ConnectError && error.code === 8,
  );
  small.release();
  assert.equal(budget.reserved, 0);
});

Deno.test("RequestEnvelopeStream leaves compressed messages to connect unless told to inflate", async () => {
  const body = envelope(new Uint8Array(gzipSync(new Uint8Array(10))), 1);
  const budget = new BufferBudget({ maxBytes: 1000 });
  const { bytes } = await drain(
    ReadableStream.from([body]).pipeThrough(new RequestEnvelopeStream({ readMaxBytes: 1000 })),
    budget,
  );
  assert.deepEqual(bytes, body);
});

Deno.test("RequestEnvelopeStream errors a message that stops arriving and frees its room", async () => {
  const budget = new BufferBudget({
    maxBytes: 1000,
    minReceiveBytesPerSec: 1000,
    receiveGraceMs: 50,
  });
  const envelopes = new RequestEnvelopeStream({ budget, readMaxBytes: 1000 });
  const writer = envelopes.writable.getWriter();
  const reader = envelopes.readable.getReader();
  // 500 bytes may take 0.05 s plus 0.5 s; the client sends the prefix and 10 bytes, then nothing.
  const whole = envelope(new Uint8Array(500));
  writer.write(whole.subarray(0, 15)).catch(() => {});
  const refused = (async () => {
    for (;;) await reader.read();
  })().catch((error) => error);
  await eventually(() => budget.reserved === 500, "the message's reservation");
  const error = await refused;
  assert.ok(error instanceof ConnectError, String(error));
  assert.match(error.rawMessage, /did not arrive within 0\.6 s: .*MAX_BUFFERED_BYTES/);
  assert.equal(budget.reserved, 0);
});

Deno.test("RequestEnvelopeStream stops the clock once a message has arrived", async () => {
  const budget = new BufferBudget({
    maxBytes: 1000,
    minReceiveBytesPerSec: 1000,
    receiveGraceMs: 1,
  });
  const envelopes = new RequestEnvelopeStream({ budget, readMaxBytes: 1000 });
  const reader = ReadableStream.from([envelope(new Uint8Array(10))]).pipeThrough(envelopes)
    .getReader();
  assert.equal((await reader.read()).value?.length, 5);
  assert.equal((await reader.read()).value?.length, 10);
  // Well past the 11 ms a 10-byte message may take: the stream ends normally, not with an error.
  let failed = false;
  reader.closed.catch(() => failed = true);
  await consistently(() => !failed, "the stream to stay unfailed", 50);
  assert.equal((await reader.read()).done, true);
  envelopes.release();
  assert.equal(budget.reserved, 0);
});
