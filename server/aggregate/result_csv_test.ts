import assert from "node:assert/strict";
import { resultCsvChunks } from "./result_csv.ts";
import { formatResultCsv } from "./_reference.ts";
import { SalesAggregator } from "./sales_aggregator.ts";

const HEADER = "Department Name,Total Number of Sales\n";

/** The result CSV for department totals given in any order. */
const format = (entries: [string, bigint][]) => formatResultCsv(new Map(entries));

Deno.test("formatResultCsv writes the header and one LF-terminated line per department", () => {
  assert.equal(format([]), HEADER);
  assert.equal(format([["Toys", 5n]]), HEADER + "Toys,5\n");
  assert.equal(
    format([["Toys", 5n], ["Books", 3n], ["Garden", 0n]]),
    HEADER + "Books,3\nGarden,0\nToys,5\n",
  );
});

Deno.test("formatResultCsv sorts by Unicode code points", async (t) => {
  await t.step("astral characters after U+FFFD, which UTF-16 order gets wrong", () => {
    const names = ["\u{1f600}", "\ufffd", "\u{10000}", "\ue000", "a", "B", "é", "Z"];
    assert.notDeepEqual(
      [...names].sort(),
      ["B", "Z", "a", "é", "\ue000", "\ufffd", "\u{10000}", "\u{1f600}"],
      "plain sort orders by UTF-16 units, so this case can tell the two apart",
    );
    assert.equal(
      format(names.map((name, i) => [name, BigInt(i)])),
      HEADER + "B,5\nZ,7\na,4\né,6\n\ue000,3\n\ufffd,1\n\u{10000},2\n\u{1f600},0\n",
    );
  });
  await t.step("case-sensitive, uppercase first", () => {
    assert.equal(
      format([["toys", 1n], ["Toys", 2n], ["TOYS", 3n]]),
      HEADER + "TOYS,3\nToys,2\ntoys,1\n",
    );
  });
  await t.step("a prefix sorts before its extensions", () => {
    assert.equal(format([["ab", 1n], ["a", 2n], ["a b", 3n]]), HEADER + "a,2\na b,3\nab,1\n");
  });
  await t.step("by the name, not by its quoted form", () => {
    // Quoted, `"a,b"` would sort before `A`.
    assert.equal(format([["a,b", 1n], ["A", 2n]]), HEADER + 'A,2\n"a,b",1\n');
  });
  await t.step("does not depend on the map's order", () => {
    const entries: [string, bigint][] = [["c", 1n], ["a", 2n], ["b", 3n]];
    const expected = HEADER + "a,2\nb,3\nc,1\n";
    assert.equal(format(entries), expected);
    assert.equal(format([...entries].reverse()), expected);
  });
});

Deno.test("formatResultCsv quotes fields per RFC 4180", async (t) => {
  const cases: [string, string, string][] = [
    ["comma", "Home, Kitchen", '"Home, Kitchen"'],
    ["quote", 'Toys "Deluxe"', '"Toys ""Deluxe"""'],
    ["only a quote", '"', '""""'],
    ["LF", "Line\nBreak", '"Line\nBreak"'],
    ["CR", "Lone\rCR", '"Lone\rCR"'],
    ["CRLF stays CRLF", "CR\r\nLF", '"CR\r\nLF"'],
    ["no quoting for spaces", "Toy Store", "Toy Store"],
    ["no quoting for tabs, apostrophes and semicolons", "a\tb'c;d", "a\tb'c;d"],
    ["no quoting for non-ASCII", "Café 日本語 \u{1f600}", "Café 日本語 \u{1f600}"],
  ];
  for (const [name, department, field] of cases) {
    await t.step(name, () => {
      assert.equal(format([[department, 7n]]), `${HEADER}${field},7\n`);
    });
  }
});

Deno.test("formatResultCsv prefixes formula-like names with an apostrophe", async (t) => {
  const cases: [string, string, string][] = [
    ["=", "=SUM(A1:A9)", "'=SUM(A1:A9)"],
    ["+", "+1", "'+1"],
    ["-", "-x", "'-x"],
    ["@", "@home", "'@home"],
    ["prefix, then quoting for a comma", "=a,b", `"'=a,b"`],
    ["prefix, then quoting for quotes", '-"x"', `"'-""x"""`],
    ["prefix, then quoting for a line break", "@a\nb", `"'@a\nb"`],
    ["not when the character is inside", "a=b+c-d@e", "a=b+c-d@e"],
    ["again for an apostrophe already there", "'=x", "''=x"],
    ["for a lone apostrophe", "'", "''"],
    ["for an apostrophe before plain text", "'tis", "''tis"],
  ];
  for (const [name, department, field] of cases) {
    await t.step(name, () => {
      assert.equal(format([[department, 1n]]), `${HEADER}${field},1\n`);
    });
  }
  await t.step("sorts by the name without the prefix", () => {
    // With the prefix, `'=b` would sort before `(a`, and `'=a` before `'z`.
    assert.equal(format([["=b", 1n], ["(a", 2n]]), HEADER + "(a,2\n'=b,1\n");
    assert.equal(format([["=a", 1n], ["'z", 2n]]), HEADER + "''z,2\n'=a,1\n");
    assert.equal(format([["=1+1", 1n], ["'=1+1", 2n]]), HEADER + "''=1+1,2\n'=1+1,1\n");
    assert.equal(
      format([["@x", 1n], ["+y", 2n], ["-z", 3n], ["=w", 4n], ["A", 5n], [",", 6n]]),
      HEADER + "'+y,2\n\",\",6\n'-z,3\n'=w,4\n'@x,1\nA,5\n",
    );
  });
  await t.step("leaves the map's names as they are", () => {
    const totals = new Map([["=x", 1n], ["a,b", 2n]]);
    formatResultCsv(totals);
    assert.deepEqual([...totals], [["=x", 1n], ["a,b", 2n]]);
  });
});

Deno.test("formatResultCsv prints bigint totals exactly", () => {
  assert.equal(
    format([
      ["a", 0n],
      ["b", 9007199254740991n],
      ["c", 9007199254740993n],
      ["d", 36028797018963964n],
      ["e", 10n ** 30n + 7n],
    ]),
    HEADER +
      "a,0\nb,9007199254740991\nc,9007199254740993\nd,36028797018963964\n" +
      "e,1000000000000000000000000000007\n",
  );
});

Deno.test("formatResultCsv writes what SalesAggregator totals", () => {
  const aggregator = new SalesAggregator();
  aggregator.push(
    new TextEncoder().encode(
      "Department Name,Date,Number of Sales\n" +
        "Toys,2024-01-01,9007199254740991\n" +
        "Toys,2024-01-02,2\n" +
        "\"=cmd|' /C calc'!A0\",2024-01-01,1\n" +
        '"Home, ""Kitchen""",2024-01-01,4\n' +
        "\u{1f600},2024-01-01,0\n" +
        "\ufffd,2024-01-01,6\n",
    ),
  );
  assert.equal(
    formatResultCsv(aggregator.finish().totals),
    HEADER +
      "'=cmd|' /C calc'!A0,1\n" +
      '"Home, ""Kitchen""",4\n' +
      "Toys,9007199254740993\n" +
      "\ufffd,6\n" +
      "\u{1f600},0\n",
  );
});

Deno.test("resultCsvChunks writes the bytes formatResultCsv writes, in pieces", () => {
  const names = [
    "Toys",
    "=SUM(A1)",
    "+1",
    "-x",
    "@home",
    "'quoted",
    'a"b',
    "Home, Kitchen",
    "Line\nBreak",
    "CR\r\nLF",
    "Lone\rCR",
    "'=1+1",
    '="x,y"',
    "é",
    "\u{1f600}",
    "\ufffd",
    "\ue000",
    "日本語",
    "x".repeat(70_000),
    '"'.repeat(40_000),
  ];
  const aggregator = new SalesAggregator();
  const encoder = new TextEncoder();
  for (const [i, name] of names.entries()) {
    const row = `"${name.replaceAll('"', '""')}",2024-01-01,${i}\n`;
    aggregator.push(encoder.encode(row));
  }
  // Totals past 2^53, and many short names, so that the output spans several pieces.
  for (let i = 0; i < 3; i++) aggregator.push(encoder.encode("Big,2024-01-01,9007199254740991\n"));
  for (let i = 0; i < 5000; i++) aggregator.push(encoder.encode(`D${i},2024-01-01,${i}\n`));
  const result = aggregator.finish();
  const pieces = [...resultCsvChunks(result.departmentTotals)];
  assert.ok(pieces.length > 3);
  const bytes = new Uint8Array(pieces.reduce((sum, piece) => sum + piece.length, 0));
  let at = 0;
  for (const piece of pieces) {
    bytes.set(piece, at);
    at += piece.length;
  }
  const expected = formatResultCsv(result.totals);
  assert.ok(expected.includes("Big,27021597764222973\n"));
  assert.equal(new TextDecoder().decode(bytes), expected);
});
