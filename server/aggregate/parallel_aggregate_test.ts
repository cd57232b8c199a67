import assert from "node:assert/strict";
import { mulberry32 } from "../testdata/mulberry32.ts";
import { aggregateFileParallel } from "./parallel_aggregate.ts";
import { resultCsvChunks } from "./result_csv.ts";
import { aggregateFile, type AggregateResult } from "./sales_aggregator.ts";

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

Deno.test("aggregateFileParallel equals aggregateFile with a cut before every line break", async () => {
  const text = randomCsv(6, 25);
  await withFile(text, async (path) => {
    const expected = comparable(await aggregateFile(path, options));
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

Deno.test("aggregateFileParallel equals aggregateFile with many cuts at random positions", async () => {
  for (let seed = 2; seed < 6; seed++) {
    const text = randomCsv(seed, 400);
    await withFile(text, async (path) => {
      const expected = comparable(await aggregateFile(path, options));
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
    const expected = comparable(await aggregateFile(path, { maxRecordBytes: 64 }));
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
