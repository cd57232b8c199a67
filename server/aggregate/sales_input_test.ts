import { equal, ok, rejects } from "node:assert/strict";
import { gzipSync as nodeGzipSync, type ZlibOptions } from "node:zlib";
import { AppError, Status } from "../errors.ts";
import { SalesInput } from "./sales_input.ts";
import { formatResultCsv } from "./result_csv.ts";

const encoder = new TextEncoder();
const csv = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\n" +
  '"Books, Music",2024-02-29,10\nToys,2023-02-29,4\nToys,2024-01-03,4\n';

/** A plain Uint8Array: a Buffer's slice() would share its bytes. */
function gzipSync(bytes: Uint8Array, options?: ZlibOptions): Uint8Array {
  return new Uint8Array(nodeGzipSync(bytes, options));
}

async function feed(input: SalesInput, bytes: Uint8Array, size: number) {
  try {
    for (let i = 0; i < bytes.length; i += size) await input.push(bytes.subarray(i, i + size));
    return await input.finish();
  } finally {
    input.close();
  }
}

function isAppError(code: number) {
  return (error: unknown) => error instanceof AppError && error.code === code;
}

Deno.test("SalesInput aggregates plain and gzip input alike, at any chunk size", async () => {
  const plain = encoder.encode(csv);
  const expected = formatResultCsv((await feed(new SalesInput(), plain, plain.length)).totals);
  equal(expected, 'Department Name,Total Number of Sales\n"Books, Music",10\nToys,7\n');
  const gzipped = gzipSync(plain);
  for (const size of [1, 2, 3, 17, gzipped.length]) {
    const input = new SalesInput();
    const result = await feed(input, gzipped, size);
    equal(input.isGzip, true);
    equal(formatResultCsv(result.totals), expected);
    equal(result.rows, 4);
    equal(result.badRows, 1);
  }
  const input = new SalesInput();
  await feed(input, plain, 1);
  equal(input.isGzip, false);
});

Deno.test("SalesInput reads concatenated gzip members as one file", async () => {
  const first = gzipSync(encoder.encode("Toys,2024-01-02,3\n"));
  const second = gzipSync(encoder.encode("Toys,2024-01-03,4\n"));
  const empty = gzipSync(new Uint8Array(0));
  const all = new Uint8Array([...first, ...empty, ...second]);
  for (const size of [5, all.length]) {
    equal((await feed(new SalesInput(), all, size)).totals.get("Toys"), 7n);
  }
  // Each member in its own push: a member ends exactly where the next piece of input starts.
  const input = new SalesInput();
  for (const member of [first, empty, second]) await input.push(member);
  equal((await input.finish()).totals.get("Toys"), 7n);
});

Deno.test("SalesInput inflates a big gzip file exactly, in pushes of any size", async () => {
  // Several output pieces per input piece and the other way round, so both rings fill and wait.
  const rows: string[] = [];
  for (let i = 0; i < 200_000; i++) rows.push(`D${i % 1000},2024-01-01,${i % 7}\n`);
  const plain = encoder.encode(rows.join(""));
  const gzipped = gzipSync(plain, { level: 1 });
  const expected = formatResultCsv((await feed(new SalesInput(), plain, plain.length)).totals);
  for (const size of [4096, 300_000, gzipped.length]) {
    const result = await feed(new SalesInput(), gzipped, size);
    equal(result.rows, 200_000);
    equal(formatResultCsv(result.totals), expected);
  }
});

Deno.test("SalesInput rejects corrupt and truncated gzip with INVALID_ARGUMENT", async () => {
  const gzipped = gzipSync(encoder.encode(csv.repeat(100)));
  const truncated = gzipped.subarray(0, gzipped.length - 30);
  await rejects(feed(new SalesInput(), truncated, 64), isAppError(Status.INVALID_ARGUMENT));
  const corrupt = gzipped.slice();
  corrupt.fill(0xff, 20, 60);
  await rejects(feed(new SalesInput(), corrupt, 64), isAppError(Status.INVALID_ARGUMENT));
  await rejects(
    feed(new SalesInput(), new Uint8Array([0x1f, 0x8b]), 1),
    (error) => isAppError(Status.INVALID_ARGUMENT)(error) && /truncated/.test(String(error)),
  );
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
    ["one zero byte after the last member", new Uint8Array([...gzipped, 0])],
    ["zeros, then another member", new Uint8Array([...gzipped, 0, 0, ...gzipped])],
    ["garbage after the last member", new Uint8Array([...gzipped, ...encoder.encode("Toys")])],
    ["half a gzip header after the last member", new Uint8Array([...gzipped, 0x1f, 0x8b])],
  ];
  // Every bit flip inside the deflate data either breaks inflation or the CRC-32.
  for (let at = 10; at < gzipped.length - 8; at++) cases.push([`deflate byte ${at}`, flip(at)]);
  // Fed 16 at a time, so that the inflate worker (started by the first open stream and stopped by
  // the last) starts a few times rather than once per case.
  const outcomes = await inBatches(
    16,
    cases.flatMap(([, bytes]) =>
      [7, bytes.length].map((size) => () =>
        feed(new SalesInput(), bytes, size).then(() => undefined, (error) => error)
      )
    ),
  );
  for (const [i, [name]] of cases.entries()) {
    await t.step(name, () => {
      for (const error of outcomes.slice(2 * i, 2 * i + 2)) {
        ok(isAppError(Status.INVALID_ARGUMENT)(error), `${name}: ${error}`);
      }
    });
  }
});

/** Runs `tasks` with at most `width` running at once; their results in order. */
async function inBatches<T>(width: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: width }, lane));
  return results;
}

Deno.test("SalesInput enforces maxBytes on received bytes", async () => {
  const plain = encoder.encode(csv);
  equal((await feed(new SalesInput({ maxBytes: plain.length }), plain, 7)).rows, 4);
  await rejects(
    feed(new SalesInput({ maxBytes: plain.length - 1 }), plain, 7),
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
    feed(input, bomb, 64 * 1024),
    (error: unknown) =>
      isAppError(Status.RESOURCE_EXHAUSTED)(error) && /after decompression/.test(String(error)),
  );
  // Inflating the whole bomb would take 64 MiB at once; slices keep it to a few.
  ok(Deno.memoryUsage().rss - before < 48 * 1024 * 1024);
});

Deno.test("SalesInput treats a one-byte file as plain CSV", async () => {
  const input = new SalesInput();
  await input.push(encoder.encode("x"));
  const result = await input.finish();
  equal(input.isGzip, false);
  equal(result.rows, 1);
  equal(result.badRows, 1);
});

Deno.test("SalesInput finish returns the same result when called again, for gzip too", async () => {
  // A FinishUpload retried after the result could not be stored calls finish() a second time.
  const plain = encoder.encode(csv);
  for (const bytes of [plain, gzipSync(plain), plain.subarray(0, 1)]) {
    const input = new SalesInput();
    await input.push(bytes);
    const first = await input.finish();
    equal(await input.finish(), first);
  }
});
