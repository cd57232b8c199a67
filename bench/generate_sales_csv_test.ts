import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import { aggregateInputFile } from "../server/aggregate/sales_input.ts";
import {
  cachedSalesCsvPaths,
  DEPARTMENTS,
  ensureSalesCsv,
  GENERATOR_VERSION,
  writeSalesCsv,
} from "./generate_sales_csv.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "generate_sales_csv_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("writeSalesCsv writes the same bytes for the same seed", async () => {
  await withTempDir(async (dir) => {
    const a = await writeSalesCsv(`${dir}/a.csv`, { rows: 5_000, seed: 7 });
    const b = await writeSalesCsv(`${dir}/b.csv`, { rows: 5_000, seed: 7 });
    const c = await writeSalesCsv(`${dir}/c.csv`, { rows: 5_000, seed: 8 });
    deepEqual(await Deno.readFile(`${dir}/a.csv`), await Deno.readFile(`${dir}/b.csv`));
    deepEqual(a, b);
    notDeepEqual(a.totals, c.totals);
    notDeepEqual(await Deno.readFile(`${dir}/a.csv`), await Deno.readFile(`${dir}/c.csv`));
    equal(a.bytes, (await Deno.stat(`${dir}/a.csv`)).size);
  });
});

Deno.test("writeSalesCsv writes a header, the row count, ~0.5% bad rows and quoted names", async () => {
  await withTempDir(async (dir) => {
    const expected = await writeSalesCsv(`${dir}/s.csv`, { rows: 100_000 });
    const text = await Deno.readTextFile(`${dir}/s.csv`);
    const lines = text.split("\n");
    equal(lines[0], "Department Name,Date,Number of Sales");
    equal(lines.at(-1), "", "the file ends with a line break");
    equal(lines.length - 2, 100_000, "no generated row holds a line break");
    ok(expected.badRows > 300 && expected.badRows < 700, `bad rows: ${expected.badRows}`);
    equal(expected.departments, DEPARTMENTS.length);
    ok(text.includes('\n"Books, Music",20'), "names with a comma are quoted");
  });
});

Deno.test("writeSalesCsv expected result agrees with aggregateInputFile", async () => {
  await withTempDir(async (dir) => {
    const expected = await writeSalesCsv(`${dir}/s.csv`, { rows: 200_000, seed: 42 });
    const result = await aggregateInputFile(`${dir}/s.csv`);
    equal(result.rows, expected.rows);
    equal(result.badRows, expected.badRows);
    equal(result.departments, expected.departments);
    equal(result.bytes, expected.bytes);
    deepEqual(
      [...result.totals].map(([name, total]) => [name, String(total)]),
      Object.entries(expected.totals),
    );
  });
});

Deno.test("ensureSalesCsv reuses a complete cached file and regenerates a damaged one", async () => {
  await withTempDir(async (dir) => {
    const cacheDir = new URL(`file://${dir}/cache/`);
    const first = await ensureSalesCsv(1_000, { dir: cacheDir });
    ok(first.generated);
    ok(first.path.endsWith(`/sales-1000-v${GENERATOR_VERSION}.csv`), first.path);
    const again = await ensureSalesCsv(1_000, { dir: cacheDir });
    ok(!again.generated);
    deepEqual(again.expected, first.expected);

    await Deno.truncate(first.path, 100);
    const repaired = await ensureSalesCsv(1_000, { dir: cacheDir });
    ok(repaired.generated);
    equal((await Deno.stat(first.path)).size, first.expected.bytes);
  });
});

Deno.test("ensureSalesCsv removes files of other generator versions", async () => {
  await withTempDir(async (dir) => {
    const cacheDir = new URL(`file://${dir}/`);
    const stale = new URL(`sales-1000-v${GENERATOR_VERSION + 1000}.csv`, cacheDir);
    const otherRows = new URL(`sales-2000-v${GENERATOR_VERSION + 1000}.csv`, cacheDir);
    await Deno.writeTextFile(stale, "old");
    await Deno.writeTextFile(otherRows, "old");
    await ensureSalesCsv(1_000, { dir: cacheDir });
    const names = [...Deno.readDirSync(cacheDir)].map((e) => e.name).sort();
    const current = cachedSalesCsvPaths(1_000, cacheDir);
    deepEqual(
      names,
      [
        current.csv.pathname.split("/").at(-1),
        current.expected.pathname.split("/").at(-1),
        `sales-2000-v${GENERATOR_VERSION + 1000}.csv`,
      ].sort(),
    );
  });
});
