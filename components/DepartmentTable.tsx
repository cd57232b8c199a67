import { useMemo, useState } from "preact/hooks";
import { formatCount, formatPlural } from "../browser/format.ts";
import type { DepartmentTotal } from "../browser/result_csv.ts";

/** Props of {@linkcode DepartmentTable}. */
export interface DepartmentTableProps {
  departments: DepartmentTotal[];
  /**
   * How many departments the result has, when `departments` holds only the largest of them.
   * @default {departments.length}
   */
  departmentCount?: number;
  /** The sum of every department's total, shares are of it. @default {the sum of `departments`} */
  grandTotal?: bigint;
  /** Rows shown before "Show more". @default {100} */
  pageSize?: number;
}

type SortKey = "department" | "total";
type SortDirection = "ascending" | "descending";

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

function compare(key: SortKey, a: DepartmentTotal, b: DepartmentTotal): number {
  if (key === "department") return collator.compare(a.department, b.department);
  return a.total < b.total ? -1 : a.total > b.total ? 1 : 0;
}

/** The table footer's count of what is shown, with its plurals right. */
function shownText(visible: number, total: number, inResult: number): string {
  if (inResult > total) {
    return `Showing ${formatCount(visible)} of the ${formatCount(total)} largest of ${
      formatPlural(inResult, "department")
    }.`;
  }
  if (total === 0) return "No departments.";
  if (total === 1) return "Showing the only department.";
  if (visible === total) return `Showing all ${formatPlural(total, "department")}.`;
  return `Showing ${formatCount(visible)} of ${formatPlural(total, "department")}.`;
}

/**
 * All department totals as a table sortable by name or total (largest first by default). Only the
 * first rows are in the DOM, so a result with a million departments stays responsive.
 */
export default function DepartmentTable(
  { departments, departmentCount = departments.length, grandTotal: allSales, pageSize = 100 }:
    DepartmentTableProps,
) {
  const [sort, setSort] = useState<{ key: SortKey; direction: SortDirection }>({
    key: "total",
    direction: "descending",
  });
  const [shown, setShown] = useState(pageSize);
  const grandTotal = useMemo(
    () => allSales ?? departments.reduce((sum, row) => sum + row.total, 0n),
    [departments, allSales],
  );
  const sorted = useMemo(() => {
    const sign = sort.direction === "ascending" ? 1 : -1;
    return [...departments].sort((a, b) => sign * compare(sort.key, a, b));
  }, [departments, sort]);

  const toggle = (key: SortKey) =>
    setSort((current) => ({
      key,
      direction: current.key === key
        ? (current.direction === "ascending" ? "descending" : "ascending")
        : (key === "total" ? "descending" : "ascending"),
    }));

  const header = (key: SortKey, label: string, className?: string) => {
    const active = sort.key === key;
    return (
      <th scope="col" class={className} aria-sort={active ? sort.direction : undefined}>
        <button type="button" class="sort" onClick={() => toggle(key)}>
          {label}
          <span class="sort-arrow" aria-hidden="true">
            {active ? (sort.direction === "ascending" ? "▲" : "▼") : "↕"}
          </span>
        </button>
      </th>
    );
  };

  const visible = sorted.slice(0, shown);
  return (
    <div>
      <div class="table-scroll">
        <table class="data departments">
          <caption class="visually-hidden">
            Total sales per department; select a column header to sort
          </caption>
          <thead>
            <tr>
              {header("department", "Department")}
              {header("total", "Total sales", "number")}
              <th scope="col" class="number">Share</th>
            </tr>
          </thead>
          <tbody>
            {visible.map((row) => (
              <tr key={row.department}>
                <td>{row.department === "" ? <em>(empty name)</em> : row.department}</td>
                <td class="number">{formatCount(row.total)}</td>
                <td class="number">
                  {grandTotal > 0n
                    ? `${(Number((row.total * 10_000n) / grandTotal) / 100).toFixed(2)}%`
                    : "–"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="table-footer">
        {shownText(visible.length, sorted.length, departmentCount)}
        {sorted.length > shown && (
          <>
            {" "}
            <button type="button" class="link" onClick={() => setShown(shown + 500)}>
              Show {formatCount(Math.min(500, sorted.length - shown))} more
            </button>
          </>
        )}
      </p>
    </div>
  );
}
