import assert from "node:assert/strict";
import { renderToString } from "preact-render-to-string";
import ResultView from "./ResultView.tsx";
import { finishedUploadOf } from "../browser/result_data.ts";
import type { UploadSummary } from "../browser/upload_client.ts";

/** A finished upload of one department, as `uploadFile` returns it. */
function summaryOf(overrides: Partial<UploadSummary>): UploadSummary {
  return {
    resultId: "0123456789abcdef0123456789abcdef",
    downloadUrl: "http://localhost:8080/results/0123456789abcdef0123456789abcdef.csv",
    rows: 2,
    badRows: 1,
    departments: 1,
    // The server's own time: the page shows the time the person waited instead.
    elapsedSec: 0.04,
    badRowSamples: [{
      line: 3,
      reason: "invalid date",
      raw: "Toys,2023-02-29,5",
      file: "sales.csv",
      fileIndex: 0,
    }],
    pagePath: "/r/0123456789abcdef0123456789abcdef",
    files: [],
    bytes: 120,
    wireBytes: 120,
    compressed: false,
    totalSec: 0.07,
    resultCsv: new TextEncoder().encode("Department Name,Total Number of Sales\nToys,3\n"),
    ...overrides,
  };
}

/** The view as the upload page shows it after uploading `summary` from one file, `fileName`. */
function UploadedView({ fileName, summary }: { fileName: string; summary: UploadSummary }) {
  const files = summary.files.length > 0 ? summary.files : [{
    name: fileName,
    rows: summary.rows,
    badRows: summary.badRows,
    departments: summary.departments,
  }];
  const { result, departments, csv } = finishedUploadOf({ ...summary, files });
  return <ResultView result={result} departments={departments} csv={csv} />;
}

/** The text a reader sees: tags dropped, entities and spaces as rendered. */
function textOf(html: string): string {
  return html.replace(/<[^>]+>/g, "").replace(/&amp;/g, "&").replace(/\s+/g, " ");
}

function testIdText(html: string, id: string): string {
  const match = new RegExp(`data-testid="${id}"[^>]*>([\\s\\S]*?)</(dd|span|p)>`).exec(html);
  assert.ok(match, `no ${id} in ${html}`);
  return textOf(match[1]).trim();
}

Deno.test("ResultView shows one elapsed time, on the Time card and in the sentence", () => {
  const html = renderToString(<UploadedView fileName="sales.csv" summary={summaryOf({})} />);
  assert.equal(testIdText(html, "summary-time"), "0.07 s");
  assert.equal(testIdText(html, "summary-elapsed"), "0.07 s");
  // The server's 0.04 s appears nowhere; the speed uses the same 0.07 s.
  assert.doesNotMatch(textOf(html), /0\.04 s/);
  assert.match(
    textOf(html),
    /120 B uploaded and totalled in 0\.07 s \(1\.71 kB\/s\)/,
  );
});

Deno.test("ResultView gets its plurals right", async (t) => {
  await t.step("one of each", () => {
    const text = textOf(renderToString(<UploadedView fileName="a.csv" summary={summaryOf({})} />));
    assert.match(text, /: 1 good row in 1 department, 1 bad row skipped\./);
    assert.match(text, /Bar chart of the only department by total sales/);
    assert.match(text, /Showing the only department\./);
    assert.doesNotMatch(text, /\b1 (good rows|departments|bad rows)\b/);
  });

  await t.step("several", () => {
    const text = textOf(renderToString(
      <UploadedView
        fileName="b.csv"
        summary={summaryOf({
          rows: 1_234,
          badRows: 0,
          departments: 2,
          badRowSamples: [],
          resultCsv: new TextEncoder().encode(
            "Department Name,Total Number of Sales\nToys,3\nGarden,5\n",
          ),
        })}
      />,
    ));
    assert.match(text, /: 1,234 good rows in 2 departments\./);
    assert.match(text, /Bar chart of all 2 departments by total sales/);
    assert.match(text, /Showing all 2 departments\./);
  });

  await t.step("more bad rows than samples", () => {
    const text = textOf(renderToString(
      <UploadedView fileName="c.csv" summary={summaryOf({ rows: 9, badRows: 5 })} />,
    ));
    assert.match(text, /The first 1 of 5 bad rows\./);
    assert.match(text, /4 good rows in 1 department, 5 bad rows skipped\./);
  });
});

Deno.test("ResultView of a stored result lists its files and each bad row's file", async () => {
  const { resultDataOf } = await import("../browser/result_data.ts");
  const { result, departments } = resultDataOf({
    resultId: "0123456789abcdef0123456789abcdef",
    downloadUrl: "http://localhost:8080/results/0123456789abcdef0123456789abcdef.csv",
    filename: "north.csv",
    downloadFilename: "north-and-1-more.result.csv",
    rows: 5,
    badRows: 1,
    departments: 2,
    badRowSamples: [{
      line: 3,
      reason: "invalid date",
      raw: "Toys,2023-02-29,1",
      file: "south.csv",
      fileIndex: 1,
    }],
    createdAt: "2026-12-02T10:00:00.000Z",
    sizeBytes: 50,
    files: [
      { name: "north.csv", rows: 3, badRows: 0, departments: 2 },
      { name: "south.csv", rows: 2, badRows: 1, departments: 1 },
    ],
    pagePath: "/r/0123456789abcdef0123456789abcdef",
  }, new TextEncoder().encode("Department Name,Total Number of Sales\nGarden,9\nToys,4\n"));
  const html = renderToString(<ResultView result={result} departments={departments} />);
  const text = textOf(html);
  assert.match(text, /Results for 2 files/);
  assert.match(text, /Uploaded Dec 2, 2026, 10:00 AM UTC: 4 good rows in 2 departments/);
  assert.match(text, /north\.csv\s*3\s*0\s*2\s*south\.csv\s*2\s*1\s*1/);
  assert.match(text, /Toys,2023-02-29,1\s*south\.csv/);
  assert.match(
    html,
    /href="http:\/\/localhost:8080\/results\/0123456789abcdef0123456789abcdef\.csv"/,
  );
  assert.doesNotMatch(html, /data-testid="departments-bounded"/);
});

Deno.test("ResultView says when it shows only the largest departments", () => {
  const html = renderToString(
    <ResultView
      result={{
        resultId: "0123456789abcdef0123456789abcdef",
        pagePath: "/r/0123456789abcdef0123456789abcdef",
        files: [{ name: "big.csv", rows: 3_000_000, badRows: 0, departments: 1_000_000 }],
        rows: 3_000_000,
        badRows: 0,
        departments: 1_000_000,
        badRowSamples: [],
        downloadFilename: "big.result.csv",
        downloadUrl: "http://localhost:8080/results/0123456789abcdef0123456789abcdef.csv",
        sizeBytes: 20_000_000,
        totalSales: "1000",
        largest: [["A", "300"], ["B", "100"]],
      }}
      departments={[{ department: "A", total: 300n }, { department: "B", total: 100n }]}
    />,
  );
  const text = textOf(html);
  assert.match(text, /This page shows the 2 largest of 1,000,000 departments\. Download the CSV/);
  assert.match(text, /Showing 2 of the 2 largest of 1,000,000 departments\./);
  // Shares are of all sales, not of the departments shown.
  assert.match(text, /A\s*300\s*30\.00%/);
});
