import assert from "node:assert/strict";
import { renderToString } from "preact-render-to-string";
import ResultView from "./ResultView.tsx";
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
    badRowSamples: [{ line: 3, reason: "invalid date", raw: "Toys,2023-02-29,5" }],
    bytes: 120,
    wireBytes: 120,
    compressed: false,
    totalSec: 0.07,
    resultCsv: new TextEncoder().encode("Department Name,Total Number of Sales\nToys,3\n"),
    ...overrides,
  };
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
  const html = renderToString(<ResultView fileName="sales.csv" summary={summaryOf({})} />);
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
    const text = textOf(renderToString(<ResultView fileName="a.csv" summary={summaryOf({})} />));
    assert.match(text, /: 1 good row in 1 department, 1 bad row skipped\./);
    assert.match(text, /Bar chart of the only department by total sales/);
    assert.match(text, /Showing the only department\./);
    assert.doesNotMatch(text, /\b1 (good rows|departments|bad rows)\b/);
  });

  await t.step("several", () => {
    const text = textOf(renderToString(
      <ResultView
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
      <ResultView fileName="c.csv" summary={summaryOf({ rows: 9, badRows: 5 })} />,
    ));
    assert.match(text, /The first 1 of 5 bad rows\./);
    assert.match(text, /4 good rows in 1 department, 5 bad rows skipped\./);
  });
});
