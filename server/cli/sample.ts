/**
 * `deno task sample [--rows N] [--out file]`: writes a realistic sales CSV to try the service with:
 * about 50 departments (some quoted, one non-ASCII), dates in 2020-2025, and a few unusual and bad
 * rows, as the benchmarks use. The same row count always gives the same bytes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeSalesCsv } from "../../bench/generate_sales_csv.ts";

const USAGE = `Usage: deno task sample [--rows N] [--out file]

Writes a realistic sales CSV (Department Name,Date,Number of Sales) to try the service with.

Options:
  --rows N      rows after the header (default 10000)
  --out file    where to write it (default sample.csv)
  -h, --help    show this help

Examples:
  deno task sample
  deno task sample --rows 5000000 --out big.csv`;

/** Parsed command line of `deno task sample`. */
export interface SampleArgs {
  /** Rows after the header. */
  rows: number;
  /** Output path. */
  out: string;
}

/** Parses the arguments; throws an Error meant for the user, or returns "help". */
export function parseSampleArgs(args: string[]): SampleArgs | "help" {
  const { values, positionals } = parseArgs({
    args,
    options: {
      rows: { type: "string", default: "10000" },
      out: { type: "string", short: "o", default: "sample.csv" },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
  });
  if (values.help) return "help";
  if (positionals.length > 0) throw new Error(`Unexpected argument ${positionals[0]}`);
  const rows = /^\d+$/.test(values.rows) ? Number(values.rows) : NaN;
  // Past 2^31 rows the file would pass 60 GB: surely a typo.
  if (!(rows >= 1 && rows <= 2 ** 31)) {
    throw new Error(`--rows must be a whole number from 1 to ${2 ** 31}, got ${values.rows}`);
  }
  if (values.out === "") throw new Error("--out needs a file name");
  return { rows, out: values.out };
}

/** Runs the command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed: SampleArgs | "help";
  try {
    parsed = parseSampleArgs(args);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed === "help") {
    console.log(USAGE);
    return 0;
  }
  const expected = await writeSalesCsv(parsed.out, { rows: parsed.rows });
  const size = expected.bytes < 1e6
    ? `${(expected.bytes / 1e3).toFixed(1)} KB`
    : `${(expected.bytes / 1e6).toFixed(1)} MB`;
  console.log(
    `Wrote ${parsed.out}: ${expected.rows.toLocaleString("en-US")} rows ` +
      `(${expected.badRows.toLocaleString("en-US")} of them bad on purpose), ` +
      `${expected.departments} departments, ${size}`,
  );
  console.log(`Next: deno task aggregate ${parsed.out}   or upload it at http://localhost:3000`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
