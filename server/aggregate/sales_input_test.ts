import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { gzipSync as nodeGzipSync, type ZlibOptions } from "node:zlib";
import { AppError, Status } from "../errors.ts";
import { mulberry32 } from "../_test_mulberry32.ts";
import { testAlone } from "../_test_alone.ts";
import { mergeResults } from "./merge_results.ts";
import { formatResultCsv } from "./_reference.ts";
import type { AggregateResult } from "./sales_aggregator.ts";
import { SalesInput } from "./sales_input.ts";

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

// Alone: it measures the process's resident memory.
testAlone(
  import.meta.url,
  "SalesInput stops a gzip bomb on inflated bytes without inflating it all",
  async () => {
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
  },
);

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

/** Feeds each file in pushes of `size` bytes, with `nextFile` between them. */
async function feedFiles(
  files: { name: string; bytes: Uint8Array }[],
  size: number,
): Promise<AggregateResult> {
  const input = new SalesInput({ filename: files[0].name });
  try {
    for (const [i, file] of files.entries()) {
      if (i > 0) await input.nextFile(file.name);
      for (let at = 0; at < file.bytes.length; at += size) {
        await input.push(file.bytes.subarray(at, at + size));
      }
    }
    return await input.finish();
  } finally {
    input.close();
  }
}

/** Everything but the timing, with the result CSV's bytes. */
function comparable(result: AggregateResult) {
  const { elapsedSec: _, totals: __, ...rest } = result;
  return { ...rest, csv: formatResultCsv(result.totals) };
}

const january = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\nGarden,2024-01-32,1\n";
const february = "Toys,2024-02-03,4\nBooks,2024-02-30,1\nBooks,2024-02-04,5\n";
const march =
  '\ufeffdepartment name,DATE,number of sales\r\nGarden,2024-03-01,2\r\n"Open,2024-03-02,1\n';

Deno.test("SalesInput.nextFile aggregates two and three files, plain and gzip, into one result", async () => {
  const files = [
    { name: "january.csv", bytes: encoder.encode(january) },
    { name: "february.csv.gz", bytes: gzipSync(encoder.encode(february)) },
    { name: "march.csv", bytes: encoder.encode(march) },
  ];
  for (const size of [1, 3, 64, 4096]) {
    const result = await feedFiles(files, size);
    equal(
      formatResultCsv(result.totals),
      "Department Name,Total Number of Sales\nBooks,5\nGarden,2\nToys,7\n",
    );
    deepEqual(result.files, [
      { name: "january.csv", rows: 2, badRows: 1, departments: 1 },
      { name: "february.csv.gz", rows: 3, badRows: 1, departments: 2 },
      { name: "march.csv", rows: 2, badRows: 1, departments: 1 },
    ]);
    equal(result.rows, 7);
    equal(result.badRows, 3);
    equal(result.departments, 3);
    // Lines count in each file; each file has its own header (or none).
    const samples = result.badRowSamples.map(({ file, fileIndex, line, reason }) => ({
      file,
      fileIndex,
      line,
      reason,
    }));
    deepEqual(samples, [
      { file: "january.csv", fileIndex: 0, line: 3, reason: "invalid date" },
      { file: "february.csv.gz", fileIndex: 1, line: 2, reason: "invalid date" },
      { file: "march.csv", fileIndex: 2, line: 3, reason: "unterminated quoted field" },
    ]);
    const two = await feedFiles(files.slice(0, 2), size);
    equal(formatResultCsv(two.totals), "Department Name,Total Number of Sales\nBooks,5\nToys,7\n");
    deepEqual(two.files.map((file) => file.name), ["january.csv", "february.csv.gz"]);
  }
});

Deno.test("SalesInput.nextFile equals the files aggregated one by one and added up", async () => {
  const rows = (seed: number) => {
    const random = mulberry32(seed);
    const lines = random() % 2 === 0 ? ["Department Name,Date,Number of Sales"] : [];
    for (let i = random() % 40; i > 0; i--) {
      const name = ["Toys", "Books", " Toys", '"Garden"', "Z\u00e9"][random() % 5];
      lines.push(`${name},2024-0${1 + random() % 9}-${10 + random() % 25},${random() % 1000}`);
    }
    // Sometimes no final line break, sometimes a quote left open at the end.
    const end = ["\n", "", '\n"Toys,2024-01-01,1'][random() % 3];
    return lines.join("\n") + end;
  };
  for (let seed = 1; seed <= 12; seed++) {
    const random = mulberry32(seed);
    const files = Array.from({ length: 2 + random() % 3 }, (_, i) => {
      const bytes = encoder.encode(rows(seed * 10 + i));
      return { name: `f${i}.csv`, bytes: random() % 2 === 0 ? bytes : gzipSync(bytes) };
    });
    const together = await feedFiles(files, 1 + random() % 50);
    const alone = files.map((file) => feedFiles([file], 1 + random() % 50));
    const merged = await mergeResults(await Promise.all(alone));
    deepEqual(comparable(together), comparable(merged), `seed ${seed}`);
    // The totals by hand, for the result CSV's bytes.
    const sums = new Map<string, bigint>();
    for (const result of await Promise.all(alone)) {
      for (const [name, total] of result.totals) sums.set(name, (sums.get(name) ?? 0n) + total);
    }
    equal(formatResultCsv(together.totals), formatResultCsv(sums), `seed ${seed}`);
  }
});

Deno.test("SalesInput.nextFile fails the whole input on one file's corrupt gzip, naming it", async () => {
  const truncated = gzipSync(encoder.encode(february)).subarray(0, 20);
  for (const next of ["c.csv", undefined]) {
    const input = new SalesInput({ filename: "a.csv" });
    try {
      await input.push(encoder.encode(january));
      await input.nextFile("b.csv.gz");
      await input.push(truncated).catch(() => {});
      const corrupt = (error: unknown) =>
        error instanceof AppError && error.code === Status.INVALID_ARGUMENT &&
        error.message.includes("(in b.csv.gz)");
      if (next) await rejects(input.nextFile(next), corrupt);
      await rejects(input.finish(), corrupt);
      ok(input.failed);
    } finally {
      input.close();
    }
  }
});

Deno.test("SalesInput reads one unnamed file as before, as one entry of files", async () => {
  const result = await feed(new SalesInput(), encoder.encode(csv), 5);
  deepEqual(result.files, [{ name: "", rows: 4, badRows: 1, departments: 2 }]);
  deepEqual(result.badRowSamples, [
    { line: 4, reason: "invalid date", raw: "Toys,2023-02-29,4", file: "", fileIndex: 0 },
  ]);
});
