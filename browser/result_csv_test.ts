import assert from "node:assert/strict";
import { formatResultCsv } from "../server/aggregate/_reference.ts";
import { parseResultCsv } from "./result_csv.ts";

Deno.test("parseResultCsv reads back what formatResultCsv writes, for awkward names", () => {
  const names = [
    "Toys",
    "Garden, Outdoor",
    'The "Best" Shop',
    "Multi\nline",
    "Carriage\r\nreturn",
    "=SUM(A1:A9)",
    "+1",
    "-minus",
    "@at",
    "'=1+1",
    "''",
    "'quoted'",
    "",
    "Ünïcödé 😀",
    "trailing space ",
  ];
  for (let trial = 0; trial < 50; trial++) {
    const totals = new Map<string, bigint>();
    for (const name of names) {
      if (Math.random() < 0.7) {
        totals.set(name, BigInt(Math.floor(Math.random() * 1e6)) * 10n ** 12n);
      }
    }
    const parsed = parseResultCsv(formatResultCsv(totals));
    assert.deepEqual(
      new Map(parsed.map((row) => [row.department, row.total])),
      totals,
    );
  }
});

Deno.test("parseResultCsv strips exactly one leading apostrophe", () => {
  const rows = parseResultCsv("Department Name,Total Number of Sales\n''=1+1,2\n'=1+1,1\n");
  assert.deepEqual(rows.map((row) => row.department), ["'=1+1", "=1+1"]);
});

Deno.test("parseResultCsv reads an empty result as no rows", () => {
  assert.deepEqual(parseResultCsv("Department Name,Total Number of Sales\n"), []);
});

Deno.test("parseResultCsv rejects a record with the wrong number of fields", () => {
  assert.throws(() => parseResultCsv("h1,h2\na,b,c\n"), /Unexpected result CSV record/);
});
