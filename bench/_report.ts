/**
 * Shapes every benchmark module returns, and the plain-text table `bench/main.ts` prints.
 *
 * @module
 */

/** What `bench/main.ts` passes to every benchmark. */
export interface BenchContext {
  /** Smaller inputs and fewer runs, to check the harness itself quickly. */
  quick: boolean;
  /** Progress lines go here (stderr), so stdout keeps only the results. */
  log: (line: string) => void;
}

/** One figure of a benchmark, over its repeated runs. */
export interface BenchMetric {
  name: string;
  unit: string;
  /** The best run: highest for throughput, lowest for time or memory. */
  best: number;
  median: number;
  /** The worst run. */
  worst: number;
  /** Digits after the point when printed. @default {1} */
  digits?: number;
}

/** A pass/fail verdict against a target. */
export interface BenchCheck {
  name: string;
  pass: boolean;
  /** The measured figure and how it was chosen, e.g. `452.3 MB/s (best of 3)`. */
  detail: string;
}

/** Everything one benchmark reports. */
export interface BenchResult {
  name: string;
  /** One line on what was measured (input, run count). */
  description: string;
  metrics: BenchMetric[];
  checks: BenchCheck[];
  /** Raw per-run data, written to the JSON results file. */
  runs: unknown;
}

/** A benchmark module's entry point. */
export type BenchFn = (ctx: BenchContext) => Promise<BenchResult>;

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Summarises repeated measurements; `higherIsBetter` decides which end is "best". */
export function metricOf(
  name: string,
  unit: string,
  values: readonly number[],
  higherIsBetter: boolean,
  digits = 1,
): BenchMetric {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return {
    name,
    unit,
    best: higherIsBetter ? hi : lo,
    median: median(values),
    worst: higherIsBetter ? lo : hi,
    digits,
  };
}

/** Renders rows of cells as an aligned plain-text table with a header rule. */
export function formatTable(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) =>
    cells.map((cell, c) => rightAligned[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))
      .join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** A benchmark's metrics table and check verdicts, ready to print. */
export function formatResult(result: BenchResult): string {
  const table = formatTable(
    ["metric", "best", "median", "worst", "unit"],
    result.metrics.map((m) => {
      const fmt = (x: number) => x.toFixed(m.digits ?? 1);
      return [m.name, fmt(m.best), fmt(m.median), fmt(m.worst), m.unit];
    }),
    [false, true, true, true, false],
  );
  const checks = result.checks.map((c) => `  ${c.pass ? "PASS" : "FAIL"}  ${c.name}: ${c.detail}`);
  return [`== ${result.name}: ${result.description}`, table, ...checks].join("\n");
}

/** Runs one bench as a script: `--quick` for small inputs; prints its table, exits 1 on a failed check. */
export async function runAsScript(bench: BenchFn): Promise<never> {
  const result = await bench({
    quick: Deno.args.includes("--quick"),
    log: (line) => console.error(line),
  });
  console.log(formatResult(result));
  Deno.exit(result.checks.every((check) => check.pass) ? 0 : 1);
}
