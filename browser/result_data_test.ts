import assert from "node:assert/strict";
import {
  departmentsOf,
  downloadFilenameOf,
  largestDepartments,
  resultDataOf,
  resultTitle,
  type StoredResult,
} from "./result_data.ts";

const ID = "0123456789abcdef0123456789abcdef";

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
