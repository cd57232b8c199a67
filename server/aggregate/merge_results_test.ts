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

Deno.test("bad-row samples keep each file's first bad rows, the same one file at a time as merged", async () => {
  const badRows = (count: number) =>
    Array.from(
      { length: count },
      (_, i) => `Bad,2024-13-${String(i % 28 + 1).padStart(2, "0")},1\n`,
    )
      .join("");
  const files: [string, string][] = [
    ["a.csv", `Toys,2024-01-02,1\n${badRows(30)}`],
    ["b.csv", badRows(5)],
    ["c.csv", "Toys,2024-01-02,1\n"],
    ["d.csv", `Toys,2024-01-02,1\n${badRows(1)}`],
  ];
  // One aggregator reading the files one after another, as the service does.
  const streamed = new SalesAggregator({ filename: files[0][0] });
  files.forEach(([name, csv], i) => {
    if (i > 0) streamed.nextFile(name);
    streamed.push(encoder.encode(csv));
  });
  const oneByOne = streamed.finish().badRowSamples;
  // Each file on its own, then merged, as `deno task aggregate` does.
  const merged = (await mergeResults(files.map(([name, csv]) => resultOf(name, csv))))
    .badRowSamples;
  const shape = (samples: typeof merged) =>
    samples.map((sample) => `${sample.file}#${sample.fileIndex}:${sample.line}`);
  const expected = [
    ...Array.from({ length: 18 }, (_, i) => `a.csv#0:${i + 2}`),
    "b.csv#1:1",
    "d.csv#3:2",
  ];
  deepEqual(shape(oneByOne), expected);
  deepEqual(shape(merged), expected);
  // With room for fewer files than have bad rows, the earliest files keep their one each.
  const tight = await mergeResults(files.map(([name, csv]) => resultOf(name, csv)), {
    maxBadRowSamples: 2,
  });
  deepEqual(shape(tight.badRowSamples), ["a.csv#0:2", "b.csv#1:1"]);
  // Two files holding as many: the later one gives up its last sample.
  const tie = await mergeResults([
    resultOf("x.csv", badRows(10)),
    resultOf("y.csv", badRows(10)),
    resultOf("z.csv", badRows(3)),
  ]);
  deepEqual(shape(tie.badRowSamples), [
    ...Array.from({ length: 10 }, (_, i) => `x.csv#0:${i + 1}`),
    ...Array.from({ length: 9 }, (_, i) => `y.csv#1:${i + 1}`),
    "z.csv#2:1",
  ]);
});
