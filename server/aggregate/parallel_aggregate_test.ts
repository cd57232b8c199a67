import assert from "node:assert/strict";
import { mulberry32 } from "../_test_mulberry32.ts";
import { aggregateFileParallel } from "./parallel_aggregate.ts";
import { resultCsvChunks } from "./result_csv.ts";
import type { AggregateResult } from "./sales_aggregator.ts";
import { aggregateInputFile } from "./sales_input.ts";

const encoder = new TextEncoder();
const HEADER = "Department Name,Date,Number of Sales\n";

/** Everything but the timing, the result CSV's bytes included. */
function comparable(result: AggregateResult) {
  const csv = [...resultCsvChunks(result.departmentTotals)].flatMap((chunk) => [...chunk]);
  return {
    csv: new TextDecoder().decode(new Uint8Array(csv)),
    rows: result.rows,
    badRows: result.badRows,
    departments: result.departments,
    bytes: result.bytes,
    badRowSamples: result.badRowSamples,
    files: result.files,
  };
}

/**
 * A random file where line breaks inside quoted fields are common, with bad rows, empty lines,
 * CRLF, a header-like row mid-file and over-long records (with a tiny `maxRecordBytes`).
 */
function randomCsv(seed: number, rows: number): string {
  const random = mulberry32(seed);
  const int = (n: number) => random() % n;
  const names = ["Toys", "Books", '"Home\nGarden"', '"A\r\nB"', '"x"",\n""y"', "Café", " Toys "];
  let text = int(2) === 0 ? HEADER : `\ufeff${HEADER}`;
  for (let i = 0; i < rows; i++) {
    const kind = int(20);
    const name = names[int(names.length)];
    if (kind === 0) text += "\n";
    else if (kind === 1) text += `"unterminated\n${name},2024-01-01,1\n`;
    else if (kind === 2) text += HEADER;
    else if (kind === 3) text += `${"L".repeat(40 + int(40))},2024-01-01,1\n`;
    else if (kind === 4) text += `"${"Q\n".repeat(30)}",2024-01-01,2\n`;
    else if (kind === 5) text += `Toys,2024-02-30,${int(9)}\n`;
    else {
      const day = String(1 + int(28)).padStart(2, "0");
      text += `${name},2024-01-${day},${int(1000)}${int(4) === 0 ? "\r\n" : "\n"}`;
    }
  }
  return text + (int(2) === 0 ? "Toys,2024-01-01,5" : "");
}

async function withFile(text: string, run: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ suffix: ".csv" });
  try {
    await Deno.writeFile(path, encoder.encode(text));
    await run(path);
  } finally {
    await Deno.remove(path);
  }
}

const options = { maxRecordBytes: 64, maxBadRowSamples: 1000 };

Deno.test("aggregateFileParallel equals aggregateInputFile with a cut before every line break", async () => {
  const text = randomCsv(6, 25);
  await withFile(text, async (path) => {
    const expected = comparable(await aggregateInputFile(path, options));
    const lineFeeds: number[] = [];
    // An LF inside quotes has an odd number of quotes before it: the cut there is a wrong guess.
    let insideQuotes = 0;
    let quotes = 0;
    encoder.encode(text).forEach((b, at) => {
      if (b === 0x22) quotes++;
      if (b !== 0x0a) return;
      lineFeeds.push(at);
      if (quotes % 2 === 1) insideQuotes++;
    });
    assert.ok(insideQuotes > 10, `only ${insideQuotes} LFs inside quoted fields`);
    // Every 10th LF per run, so that each LF gets a cut once and a run has a few (a cut is a
    // worker, and workers are reused from run to run).
    for (let first = 0; first < 10; first++) {
      const cuts = lineFeeds.filter((_, i) => i % 10 === first);
      const result = await aggregateFileParallel(path, { ...options, cutsNear: cuts });
      assert.deepEqual(comparable(result), expected, `cuts after the LFs at ${cuts}`);
    }
  });
});

Deno.test("aggregateFileParallel equals aggregateInputFile with many cuts at random positions", async () => {
  for (let seed = 2; seed < 6; seed++) {
    const text = randomCsv(seed, 400);
    await withFile(text, async (path) => {
      const expected = comparable(await aggregateInputFile(path, options));
      const random = mulberry32(seed * 7919);
      for (let trial = 0; trial < 2; trial++) {
        const cuts = Array.from({ length: 1 + (random() % 3) }, () => random() % text.length);
        const result = await aggregateFileParallel(path, { ...options, cutsNear: cuts });
        assert.deepEqual(comparable(result), expected, `seed ${seed}, cuts near ${cuts}`);
      }
    });
  }
});

Deno.test("aggregateFileParallel splits a file by threads and keeps the first 20 samples", async () => {
  const text = randomCsv(99, 3000);
  await withFile(text, async (path) => {
    const expected = comparable(await aggregateInputFile(path, { maxRecordBytes: 64 }));
    for (const threads of [1, 2, 4]) {
      const result = await aggregateFileParallel(path, {
        maxRecordBytes: 64,
        threads,
        minBytesPerThread: 1,
      });
      assert.deepEqual(comparable(result), expected, `${threads} threads`);
      assert.equal(result.badRowSamples.length, 20);
    }
  });
});

Deno.test("aggregateFileParallel reads a small file on one thread and handles no line break", async () => {
  await withFile("Toys,2024-01-01,3", async (path) => {
    const result = await aggregateFileParallel(path, { threads: 4, cutsNear: [5] });
    assert.deepEqual([...result.totals], [["Toys", 3n]]);
  });
  await withFile(HEADER + "Toys,2024-01-01,3\n", async (path) => {
    const result = await aggregateFileParallel(path, { threads: 4 });
    assert.deepEqual([...result.totals], [["Toys", 3n]]);
    assert.equal(result.rows, 1);
  });
});

Deno.test("aggregateFileParallel splits what is left when a worker is ready, however slow its start", async () => {
  // Several read chunks (1 MiB each), so that a worker may take its part at any of them.
  const text = randomCsv(7, 180_000);
  const size = encoder.encode(text).length;
  assert.ok(size > 4 * 2 ** 20, `only ${size} bytes`);
  await withFile(text, async (path) => {
    const expected = comparable(await aggregateInputFile(path, options));
    for (const threads of [2, 3]) {
      // First, until every worker has said it is ready: then the pool holds ready ones.
      let ready = 0;
      const warmUp = await aggregateFileParallel(path, {
        ...options,
        threads,
        minBytesPerThread: 1,
        workerReady: () => {
          ready++;
        },
      });
      assert.deepEqual(comparable(warmUp), expected, `${threads} threads, warming up`);
      const deadline = Date.now() + 10_000;
      while (ready < threads - 1) {
        assert.ok(Date.now() < deadline, `only ${ready} of ${threads - 1} workers got ready`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      for (const delayMs of [0, 1, 3, 10, 30]) {
        const parts: number[][] = [];
        const delays: Promise<void>[] = [];
        const result = await aggregateFileParallel(path, {
          ...options,
          threads,
          minBytesPerThread: 1,
          workerReady: delayMs === 0 ? undefined : () => {
            const delay = new Promise<void>((resolve) => setTimeout(resolve, delayMs));
            delays.push(delay);
            return delay;
          },
          onWorkerPart: (start, end) => parts.push([start, end]),
        });
        // A worker ready after the file was read leaves its delay running: no timer may outlive
        // the test.
        await Promise.all(delays);
        const where = `${threads} threads, ready after ${delayMs} ms, parts ${parts.join(" ")}`;
        assert.deepEqual(comparable(result), expected, where);
        // Ready at once, each worker takes an equal share of the whole file.
        if (delayMs === 0) {
          assert.equal(parts.length, threads - 1, where);
          for (const [start, end] of parts) {
            const share = size / threads;
            assert.ok(Math.abs(end - start - share) < share / 100, where);
          }
        }
      }
    }
  });
});
