import { equal, ok, rejects, throws } from "node:assert/strict";
import { gzipSync } from "fflate";
import { AppError, Status } from "../errors.ts";
import { SalesInput } from "./sales_input.ts";
import { formatResultCsv } from "./result_csv.ts";

const encoder = new TextEncoder();
const csv = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\n" +
  '"Books, Music",2024-02-29,10\nToys,2023-02-29,4\nToys,2024-01-03,4\n';

function feed(input: SalesInput, bytes: Uint8Array, size: number) {
  for (let i = 0; i < bytes.length; i += size) input.push(bytes.subarray(i, i + size));
  return input.finish();
}

function isAppError(code: number) {
  return (error: unknown) => error instanceof AppError && error.code === code;
}

Deno.test("SalesInput aggregates plain and gzip input alike, at any chunk size", () => {
  const plain = encoder.encode(csv);
  const expected = formatResultCsv(feed(new SalesInput(), plain, plain.length).totals);
  equal(expected, 'Department Name,Total Number of Sales\n"Books, Music",10\nToys,7\n');
  const gzipped = gzipSync(plain);
  for (const size of [1, 2, 3, 17, gzipped.length]) {
    const input = new SalesInput();
    const result = feed(input, gzipped, size);
    equal(input.isGzip, true);
    equal(formatResultCsv(result.totals), expected);
    equal(result.rows, 4);
    equal(result.badRows, 1);
  }
  const input = new SalesInput();
  feed(input, plain, 1);
  equal(input.isGzip, false);
});

Deno.test("SalesInput reads concatenated gzip members as one file", () => {
  const first = gzipSync(encoder.encode("Toys,2024-01-02,3\n"));
  const second = gzipSync(encoder.encode("Toys,2024-01-03,4\n"));
  const both = new Uint8Array([...first, ...second]);
  equal(feed(new SalesInput(), both, 5).totals.get("Toys"), 7n);
});

Deno.test("SalesInput rejects corrupt and truncated gzip with INVALID_ARGUMENT", () => {
  const gzipped = gzipSync(encoder.encode(csv.repeat(100)));
  const truncated = gzipped.subarray(0, gzipped.length - 30);
  throws(() => feed(new SalesInput(), truncated, 64), isAppError(Status.INVALID_ARGUMENT));
  const corrupt = gzipped.slice();
  corrupt.fill(0xff, 20, 60);
  throws(() => feed(new SalesInput(), corrupt, 64), isAppError(Status.INVALID_ARGUMENT));
});

Deno.test("SalesInput rejects gzip whose CRC-32, length or framing is wrong", async (t) => {
  const gzipped = gzipSync(encoder.encode(csv));
  const flip = (at: number) => {
    const copy = gzipped.slice();
    copy[at] ^= 0x01;
    return copy;
  };
  const cases: [string, Uint8Array][] = [
    ["CRC-32 in the trailer", flip(gzipped.length - 8)],
    ["length in the trailer", flip(gzipped.length - 1)],
    ["trailer cut off", gzipped.subarray(0, gzipped.length - 4)],
    ["trailing bytes after the last member", new Uint8Array([...gzipped, 0, 0, 0, 0])],
    ["garbage after the last member", new Uint8Array([...gzipped, ...encoder.encode("Toys")])],
  ];
  // Every bit flip inside the deflate data either breaks inflation or the CRC-32.
  for (let at = 10; at < gzipped.length - 8; at++) cases.push([`deflate byte ${at}`, flip(at)]);
  for (const [name, bytes] of cases) {
    await t.step(name, () => {
      throws(() => feed(new SalesInput(), bytes, 7), isAppError(Status.INVALID_ARGUMENT));
    });
  }
});

Deno.test("SalesInput enforces maxBytes on received bytes", () => {
  const plain = encoder.encode(csv);
  equal(feed(new SalesInput({ maxBytes: plain.length }), plain, 7).rows, 4);
  throws(
    () => feed(new SalesInput({ maxBytes: plain.length - 1 }), plain, 7),
    (error: unknown) =>
      isAppError(Status.RESOURCE_EXHAUSTED)(error) && /limit is \d+ bytes/.test(String(error)),
  );
});

Deno.test("SalesInput stops a gzip bomb on inflated bytes without inflating it all", async () => {
  // 64 MiB of zeros compress to ~64 KiB; the limit is 1 MiB.
  const bomb = gzipSync(new Uint8Array(64 * 1024 * 1024), { level: 9 });
  ok(bomb.length < 1024 * 1024);
  const before = Deno.memoryUsage().rss;
  const input = new SalesInput({ maxBytes: 1024 * 1024 });
  await rejects(
    async () => {
      await Promise.resolve();
      feed(input, bomb, 64 * 1024);
    },
    (error: unknown) =>
      isAppError(Status.RESOURCE_EXHAUSTED)(error) && /after decompression/.test(String(error)),
  );
  // Inflating the whole bomb would take 64 MiB at once; slices keep it to a few.
  ok(Deno.memoryUsage().rss - before < 48 * 1024 * 1024);
});

Deno.test("SalesInput treats a one-byte file as plain CSV", () => {
  const input = new SalesInput();
  input.push(encoder.encode("x"));
  const result = input.finish();
  equal(input.isGzip, false);
  equal(result.rows, 1);
  equal(result.badRows, 1);
});

Deno.test("SalesInput finish returns the same result when called again, for gzip too", () => {
  // A FinishUpload retried after the result could not be stored calls finish() a second time.
  const plain = encoder.encode(csv);
  for (const bytes of [plain, gzipSync(plain), plain.subarray(0, 1)]) {
    const input = new SalesInput();
    input.push(bytes);
    const first = input.finish();
    equal(input.finish(), first);
  }
});
