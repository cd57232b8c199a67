import assert from "node:assert/strict";
import { parseResultCsv } from "../../browser/result_csv.ts";
import { EMBEDDED_DEPARTMENTS, largestDepartments } from "../../browser/result_data.ts";
import { resultCsvChunks } from "../aggregate/result_csv.ts";
import { SalesAggregator } from "../aggregate/sales_aggregator.ts";
import { concatBytes } from "../_test_bytes.ts";
import { seededRandom } from "../_test_mulberry32.ts";
import { ResultStore } from "../storage/result_store.ts";
import { KEPT_LARGEST_DEPARTMENTS, largestDepartmentsOf, UploadRun } from "./upload_run.ts";

const encoder = new TextEncoder();
const HEADER = "Department Name,Date,Number of Sales\n";

/** Random sales: few distinct totals (many ties), awkward names, some totals past 2^53. */
function randomSales(seed: number): string {
  const random = seededRandom(seed);
  const departments = 1 + Math.floor(random() * 300);
  const names = Array.from(
    { length: departments },
    (_, i) => [`Dept ${i}`, `"Comma, ${i}"`, `=Formula ${i}`, `Été ${i}`, `'Quoted ${i}`][i % 5],
  );
  const lines = [HEADER.trimEnd()];
  for (let row = 0; row < departments * 3; row++) {
    const name = names[Math.floor(random() * departments)];
    const sales = random() < 0.05 ? Number.MAX_SAFE_INTEGER : Math.floor(random() * 4);
    lines.push(`${name},2024-01-02,${sales}`);
  }
  return lines.join("\n") + "\n";
}

Deno.test("largestDepartmentsOf keeps what a stable sort of the result CSV keeps, and sums every total", async (t) => {
  for (let seed = 1; seed <= 40; seed++) {
    await t.step(`seed ${seed}`, () => {
      const aggregator = new SalesAggregator();
      aggregator.push(encoder.encode(randomSales(seed)));
      const totals = aggregator.finish().departmentTotals;
      // The slow, obvious reference: the whole CSV parsed back, sorted, cut.
      const rows = parseResultCsv(
        new TextDecoder().decode(
          concatBytes([...resultCsvChunks(totals)].map((chunk) => chunk.slice())),
        ),
      );
      for (const limit of [0, 1, 7, 1000]) {
        const largest = largestDepartmentsOf(totals, limit);
        assert.deepEqual(largest.departments, largestDepartments(rows, limit), `limit ${limit}`);
        assert.equal(largest.totalSales, String(rows.reduce((sum, row) => sum + row.total, 0n)));
      }
    });
  }
});

Deno.test("KEPT_LARGEST_DEPARTMENTS is as many as a result page shows", () => {
  assert.equal(KEPT_LARGEST_DEPARTMENTS, EMBEDDED_DEPARTMENTS);
});

Deno.test("UploadRun.finish keeps the largest departments and the grand total in the metadata", async () => {
  const dir = await Deno.makeTempDir({ prefix: "upload_run_test_" });
  try {
    const store = await ResultStore.open(dir);
    const run = new UploadRun(["a.csv", "b.csv"]);
    const extra = Array.from({ length: 1_200 }, (_, i) => `D${i},2024-01-02,${i}\n`).join("");
    await run.push(encoder.encode(`${HEADER}Toys,2024-01-02,9007199254740991\n${extra}`));
    await run.nextFile("b.csv");
    await run.push(encoder.encode(`${HEADER}Toys,2024-01-02,9\n`));
    const response = await run.finish(store, (id) => id, (id) => id);
    const meta = await store.readMeta(response.resultId);
    const rows = parseResultCsv(new TextDecoder().decode(await store.read(response.resultId)));
    assert.equal(meta?.largest?.departments.length, 1_000);
    assert.deepEqual(meta?.largest?.departments[0], ["Toys", "9007199254741000"]);
    assert.deepEqual(meta?.largest?.departments, largestDepartments(rows));
    assert.equal(
      meta?.largest?.totalSales,
      String(9007199254741000n + BigInt((1_199 * 1_200) / 2)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
