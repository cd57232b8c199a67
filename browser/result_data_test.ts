import assert from "node:assert/strict";
import { parseResultCsv } from "./result_csv.ts";
import {
  departmentsOf,
  downloadFilenameOf,
  largestDepartments,
  largestInCsv,
  resultDataOf,
  resultTitle,
  type StoredResult,
  storedResultData,
} from "./result_data.ts";
import { seededRandom } from "../server/_test_mulberry32.ts";

const ID = "0123456789abcdef0123456789abcdef";
const encoder = new TextEncoder();

function stored(overrides: Partial<StoredResult> = {}): StoredResult {
  return {
    resultId: ID,
    downloadUrl: `http://localhost:8080/results/${ID}.csv`,
    filename: "north.csv",
    downloadFilename: "north-and-1-more.result.csv",
    rows: 5,
    badRows: 1,
    departments: 3,
    badRowSamples: [{ line: 3, reason: "invalid date", raw: "x", file: "south.csv", fileIndex: 1 }],
    createdAt: "2026-12-02T10:00:00.000Z",
    sizeBytes: 60,
    files: [
      { name: "north.csv", rows: 3, badRows: 0, departments: 2 },
      { name: "south.csv", rows: 2, badRows: 1, departments: 2 },
    ],
    pagePath: `/r/${ID}?exp=1&sig=x`,
    ...overrides,
  };
}

const CSV = new TextEncoder().encode(
  "Department Name,Total Number of Sales\nGarden,9007199254740993\nToys,4\n'=Sum,12\n",
);

Deno.test("largestDepartments keeps the largest first, exactly, as JSON-safe text", () => {
  const departments = departmentsOf([["a", "1"], ["b", "30"], ["c", "20"], ["d", "9"]]);
  assert.deepEqual(largestDepartments(departments, 2), [["b", "30"], ["c", "20"]]);
  const big = largestDepartments([{ department: "x", total: 2n ** 70n }]);
  assert.deepEqual(JSON.parse(JSON.stringify(big)), [["x", String(2n ** 70n)]]);
  assert.equal(departmentsOf(big)[0].total, 2n ** 70n);
});

Deno.test("resultDataOf embeds at most the limit and sums every department", () => {
  const { result, departments } = resultDataOf(stored(), CSV, 2);
  assert.deepEqual(result.largest, [["Garden", "9007199254740993"], ["=Sum", "12"]]);
  assert.equal(result.totalSales, "9007199254741009");
  assert.equal((departments as unknown[]).length, 3);
  assert.equal(result.pagePath, `/r/${ID}?exp=1&sig=x`);
  assert.equal(result.files.length, 2);
  // What goes into the page survives JSON.
  assert.deepEqual(JSON.parse(JSON.stringify(result)), result);
});

Deno.test("resultDataOf fills in a result stored before files and metadata were kept", () => {
  const { result } = resultDataOf(
    stored({ files: [], filename: "", rows: 0, badRows: 0, departments: 0, pagePath: "" }),
    CSV,
  );
  assert.deepEqual(result.files, [{ name: "", rows: 0, badRows: 0, departments: 0 }]);
  assert.equal(result.departments, 3);
  assert.equal(result.pagePath, `/r/${ID}`);
});

Deno.test("resultDataOf reports a CSV it cannot read instead of throwing", () => {
  const { result, departments } = resultDataOf(stored(), new TextEncoder().encode('h,t\n"open'));
  assert.ok(departments instanceof Error);
  assert.deepEqual(result.largest, []);
});

Deno.test("resultTitle and downloadFilenameOf name one file or several", () => {
  const one = [{ name: "sales.csv.gz", rows: 1, badRows: 0, departments: 1 }];
  const three = [...one, { ...one[0], name: "b.csv" }, { ...one[0], name: "c.csv" }];
  assert.equal(resultTitle(one), "sales.csv.gz");
  assert.equal(resultTitle(three), "sales.csv.gz and 2 more files");
  assert.equal(resultTitle(three.slice(0, 2)), "sales.csv.gz and 1 more file");
  assert.equal(downloadFilenameOf(one, ID), "sales.result.csv");
  assert.equal(downloadFilenameOf(three, ID), "sales-and-2-more.result.csv");
  assert.equal(downloadFilenameOf([{ ...one[0], name: "" }], ID), `${ID}.csv`);
});

/** A read of the CSV the test can count; it must not happen when the metadata suffices. */
function csvReader(csv: Uint8Array) {
  const reader = {
    reads: 0,
    read(): Promise<Uint8Array> {
      reader.reads++;
      return Promise.resolve(csv);
    },
  };
  return reader;
}

Deno.test("storedResultData shows the largest departments the metadata keeps, without reading the CSV", async () => {
  const reader = csvReader(CSV);
  const largest = {
    departments: [["Garden", "30"], ["Toys", "4"]] as [string, string][],
    totalSales: "34",
  };
  const result = await storedResultData(stored({ largest }), reader.read, { limit: 1 });
  assert.equal(reader.reads, 0);
  assert.deepEqual(result.largest, [["Garden", "30"]]);
  assert.equal(result.totalSales, "34");
  assert.equal(result.departments, 3);
  assert.equal(result.departmentsUnshown, undefined);
  assert.deepEqual(JSON.parse(JSON.stringify(result)), result);
});

Deno.test("storedResultData reads an older result's CSV, as resultDataOf does, up to a bound", async () => {
  const reader = csvReader(CSV);
  const result = await storedResultData(stored(), reader.read, { limit: 2 });
  assert.equal(reader.reads, 1);
  assert.deepEqual(result, resultDataOf(stored(), CSV, 2).result);

  // Too large: not read at all; the page says why it shows no department.
  const large = await storedResultData(stored({ sizeBytes: 9_000_000 }), reader.read, {
    maxCsvBytes: 8_000_000,
  });
  assert.equal(reader.reads, 1);
  assert.deepEqual(large.largest, []);
  assert.equal(
    large.departmentsUnshown,
    "its CSV (9.0 MB) is larger than the 8.0 MB this page reads",
  );

  const broken = await storedResultData(
    stored(),
    () => Promise.resolve(encoder.encode('h,t\n"open')),
  );
  assert.match(broken.departmentsUnshown ?? "", /Unterminated quoted field/);
  assert.deepEqual(broken.largest, []);
});

Deno.test("largestInCsv over pieces keeps what parsing the whole CSV keeps", async (t) => {
  // Quoted names hold line ends, commas and quotes, so a piece must not end inside one.
  const random = seededRandom(3);
  const lines = ["Department Name,Total Number of Sales"];
  for (let i = 0; i < 3_000; i++) {
    const name = i % 7 === 0
      ? `"Line\nbreak ""${i}"", here"`
      : i % 11 === 0
      ? `'=F${i}`
      : `Dépt ${i}`;
    lines.push(`${name},${Math.floor(random() * 50) * (i % 13 === 0 ? 2 ** 40 : 1)}`);
  }
  const text = lines.join("\n") + "\n";
  const all = parseResultCsv(text);
  for (const pieceBytes of [1, 100, 4096, 1 << 20]) {
    await t.step(`pieces of ${pieceBytes} bytes`, () => {
      const seen = largestInCsv(encoder.encode(text), 100, pieceBytes);
      assert.equal(seen.departments, all.length);
      assert.equal(seen.totalSales, String(all.reduce((sum, row) => sum + row.total, 0n)));
      assert.deepEqual(seen.largest, largestDepartments(all, 100));
    });
  }
  assert.throws(() => largestInCsv(encoder.encode('h,t\n"open,1\n'), 10), /Unterminated/);
  assert.deepEqual(largestInCsv(encoder.encode("Department Name,Total Number of Sales\n"), 10), {
    departments: 0,
    totalSales: "0",
    largest: [],
  });
});
