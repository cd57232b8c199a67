import { formatCount, formatDistinctLabels, formatPlural } from "../browser/format.ts";
import type { DepartmentTotal } from "../browser/result_csv.ts";

/** Props of {@linkcode DepartmentChart}. */
export interface DepartmentChartProps {
  /** The largest departments, largest first. */
  departments: DepartmentTotal[];
  /** How many departments there are in all, for the description. */
  departmentCount: number;
}

const ROW = 30;
const LABEL_WIDTH = 190;
const BAR_START = LABEL_WIDTH + 10;
const BAR_SPACE = 330;
/** Room after a bar for its value label: at least this much... */
const MIN_VALUE_SPACE = 70;
/** ...or this much per character, the widest a digit is at the label's 12px. */
const VALUE_CHAR_WIDTH = 7.5;

function shorten(name: string, max = 26): string {
  const chars = [...name];
  return chars.length <= max ? name : chars.slice(0, max - 1).join("") + "…";
}

/** A horizontal bar chart (SVG) of the largest departments by total sales. */
export default function DepartmentChart({ departments, departmentCount }: DepartmentChartProps) {
  if (departments.length === 0) return <p class="muted">No departments to chart.</p>;
  const largest = departments[0].total > 0n ? departments[0].total : 1n;
  const height = departments.length * ROW + 6;
  // Labels for the chart as a whole, so that two different totals never read the same.
  const labels = formatDistinctLabels(departments.map((row) => row.total));
  const longestLabel = Math.max(...labels.map((label) => label.length));
  const width = BAR_START + BAR_SPACE +
    Math.max(MIN_VALUE_SPACE, Math.ceil(longestLabel * VALUE_CHAR_WIDTH) + 10);
  const shown = departments.length === departmentCount
    ? (departmentCount === 1
      ? "the only department"
      : `all ${formatCount(departmentCount)} departments`)
    : `the ${formatCount(departments.length)} largest of ${
      formatPlural(departmentCount, "department")
    }`;
  const description = `Bar chart of ${shown} by total sales; the largest is ${
    departments[0].department || "(empty name)"
  } with ${formatCount(departments[0].total)}.`;
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-labelledby="chart-title chart-desc"
        preserveAspectRatio="xMinYMin meet"
      >
        <title id="chart-title">Largest departments by total sales</title>
        <desc id="chart-desc">{description}</desc>
        {departments.map((row, index) => {
          // Scaled in bigint first: totals may pass 2^53, the ratio never does.
          const share = Number((row.total * 10_000n) / largest) / 10_000;
          const barWidth = Math.max(2, share * BAR_SPACE);
          const y = index * ROW + 3;
          return (
            <g key={row.department} class="chart-row">
              <title>{`${row.department || "(empty name)"}: ${formatCount(row.total)}`}</title>
              <text
                x={LABEL_WIDTH}
                y={y + ROW / 2}
                class="chart-label"
                text-anchor="end"
                dominant-baseline="middle"
              >
                {shorten(row.department || "(empty name)")}
              </text>
              <rect
                x={BAR_START}
                y={y + 4}
                width={barWidth}
                height={ROW - 10}
                rx="3"
                class="chart-bar"
              />
              <text
                x={BAR_START + barWidth + 6}
                y={y + ROW / 2}
                class="chart-value"
                dominant-baseline="middle"
              >
                {labels[index]}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
