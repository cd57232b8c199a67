import assert from "node:assert/strict";
import { renderToString } from "preact-render-to-string";
import DepartmentTable from "./DepartmentTable.tsx";
import type { DepartmentTotal } from "../browser/result_csv.ts";

function footerOf(departments: DepartmentTotal[], pageSize?: number): string {
  const html = renderToString(<DepartmentTable departments={departments} pageSize={pageSize} />);
  const footer = /<p class="table-footer">([\s\S]*?)<\/p>/.exec(html)?.[1] ?? "";
  return footer.replace(/<[^>]+>/g, "").replace(/\s+/g, " ").trim();
}

const departments = (count: number): DepartmentTotal[] =>
  Array.from({ length: count }, (_, i) => ({ department: `D${i}`, total: BigInt(i) }));

Deno.test("DepartmentTable counts what it shows with the plurals right", () => {
  assert.equal(footerOf([]), "No departments.");
  assert.equal(footerOf(departments(1)), "Showing the only department.");
  assert.equal(footerOf(departments(2)), "Showing all 2 departments.");
  assert.equal(
    footerOf(departments(1_250), 100),
    "Showing 100 of 1,250 departments. Show 500 more",
  );
  assert.equal(footerOf(departments(101), 100), "Showing 100 of 101 departments. Show 1 more");
});
