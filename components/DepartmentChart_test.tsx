import assert from "node:assert/strict";
import { renderToString } from "preact-render-to-string";
import DepartmentChart from "./DepartmentChart.tsx";
import type { DepartmentTotal } from "../browser/result_csv.ts";

function labelsOf(html: string): string[] {
  return [...html.matchAll(/<text [^>]*class="chart-value"[^>]*>([^<]*)<\/text>/g)].map((m) =>
    m[1]
  );
}

Deno.test("DepartmentChart labels bars so that different totals read differently", () => {
  // Ten totals that a one-decimal compact label shows as 1.2B each.
  const departments: DepartmentTotal[] = Array.from({ length: 10 }, (_, i) => ({
    department: `Department ${i}`,
    total: 1_233_000_000n - BigInt(i) * 3_700_000n,
  }));
  const html = renderToString(
    <DepartmentChart departments={departments} departmentCount={25} />,
  );
  const labels = labelsOf(html);
  assert.equal(labels.length, 10);
  assert.equal(new Set(labels).size, 10, labels.join(" "));
  assert.equal(labels[0], "1.233B");
  // The exact figure stays in each bar's tooltip and the description.
  assert.match(html, /<title>Department 0: 1,233,000,000<\/title>/);
  assert.match(html, /Bar chart of the 10 largest of 25 departments by total sales/);
});

Deno.test("DepartmentChart makes room for exact labels", () => {
  const departments: DepartmentTotal[] = [
    { department: "A", total: 1_234_567_891n },
    { department: "B", total: 1_234_567_890n },
  ];
  const html = renderToString(<DepartmentChart departments={departments} departmentCount={2} />);
  assert.deepEqual(labelsOf(html), ["1,234,567,891", "1,234,567,890"]);
  const width = Number(/viewBox="0 0 (\d+)/.exec(html)?.[1]);
  // Bars end at 530 at most; thirteen characters at 12px need about 100 more.
  assert.ok(width >= 530 + 13 * 7, `${width}`);
  assert.match(html, /Bar chart of all 2 departments/);
});
