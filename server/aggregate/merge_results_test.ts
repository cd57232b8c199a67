import { deepEqual, equal, rejects } from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import { mergeResults } from "./merge_results.ts";
import { formatResultCsv } from "./_reference.ts";
import { SalesAggregator } from "./sales_aggregator.ts";

const encoder = new TextEncoder();

function resultOf(filename: string, csv: string) {
  const aggregator = new SalesAggregator({ filename });
  aggregator.push(encoder.encode(csv));
  return aggregator.finish();
}

Deno.test("mergeResults adds totals past 2^53 exactly and joins files and samples in order", async () => {
  const big = "9007199254740991";
  const results = [
    resultOf("a.csv", `Toys,2024-01-02,${big}\nBad,2024-13-01,1\n`),
    resultOf("b.csv", `Toys,2024-01-02,${big}\nBooks,2024-01-02,1\nBad,x,1\n`),
  ];
  async function* each() {
    yield* results;
  }
  const merged = await mergeResults(each(), { maxBadRowSamples: 2 });
  equal(
    formatResultCsv(merged.totals),
    `Department Name,Total Number of Sales\nBooks,1\nToys,18014398509481982\n`,
  );
  equal(merged.rows, 5);
  equal(merged.badRows, 2);
  equal(merged.departments, 2);
  deepEqual(merged.files.map((file) => [file.name, file.departments]), [["a.csv", 1], [
    "b.csv",
    2,
  ]]);
  deepEqual(
    merged.badRowSamples.map((sample) => [sample.file, sample.fileIndex, sample.line]),
    [["a.csv", 0, 2], ["b.csv", 1, 3]],
  );
  equal((await mergeResults(results, { maxBadRowSamples: 1 })).badRowSamples.length, 1);
});

Deno.test("mergeResults refuses more departments than maxDepartments over all files", async () => {
  const results = [resultOf("a.csv", "A,2024-01-02,1\n"), resultOf("b.csv", "B,2024-01-02,1\n")];
  await rejects(
    mergeResults(results, { maxDepartments: 1 }),
    (error) => error instanceof AppError && error.code === Status.RESOURCE_EXHAUSTED,
  );
  equal((await mergeResults(results, { maxDepartments: 2 })).departments, 2);
});
