import assert from "node:assert/strict";
import { SalesAggregator } from "../aggregate/sales_aggregator.ts";
import { main, parseSampleArgs } from "./sample.ts";

Deno.test("parseSampleArgs reads --rows and --out, with defaults", () => {
  assert.deepEqual(parseSampleArgs([]), { rows: 10000, out: "sample.csv" });
  assert.deepEqual(parseSampleArgs(["--rows", "5", "--out", "x.csv"]), { rows: 5, out: "x.csv" });
  assert.deepEqual(parseSampleArgs(["--rows=7", "-o", "y.csv"]), { rows: 7, out: "y.csv" });
  assert.equal(parseSampleArgs(["--help"]), "help");
});

Deno.test("parseSampleArgs refuses what it cannot use", async (t) => {
  for (const args of [["--rows", "0"], ["--rows", "1e3"], ["--rows", "-5"], ["extra"], ["--x"]]) {
    await t.step(args.join(" "), () => assert.throws(() => parseSampleArgs(args)));
  }
});

Deno.test("sample writes a CSV that aggregates to the rows it announces", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/s.csv`;
    assert.equal(await main(["--rows", "2000", "--out", out]), 0);
    const bytes = await Deno.readFile(out);
    const text = new TextDecoder().decode(bytes);
    assert.ok(text.startsWith("Department Name,Date,Number of Sales\n"));
    const aggregator = new SalesAggregator();
    aggregator.push(bytes);
    const result = aggregator.finish();
    assert.equal(result.rows, 2000);
    assert.ok(result.badRows > 0 && result.badRows < 100, `bad rows: ${result.badRows}`);
    assert.ok(result.departments >= 40, `departments: ${result.departments}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
