/**
 * `deno task sample [--rows N] [--out file]`: writes a realistic sales CSV to try the service with:
 * about 50 departments (some quoted, one non-ASCII), dates in 2020-2025, and a few unusual and bad
 * rows, as the benchmarks use. The same row count always gives the same bytes.
 *
 * @module
 */

import { writeSalesCsv } from "../../bench/generate_sales_csv.ts";
import { parseCommandLine, startCommand } from "./_cli_args.ts";

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

/**
 * Parses the arguments; throws an Error whose message, the usage included, is meant for the user,
 * or returns "help".
 */
export function parseSampleArgs(args: string[]): SampleArgs | "help" {
  const { values, positionals } = parseCommandLine(args, {
    rows: { type: "string", default: "10000" },
    out: { type: "string", short: "o", default: "sample.csv" },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (values.help) return "help";
  if (positionals.length > 0) throw new Error(`Unexpected argument ${positionals[0]}\n\n${USAGE}`);
  const rows = /^\d+$/.test(values.rows) ? Number(values.rows) : NaN;
  // Past 2^31 rows the file would pass 60 GB: surely a typo.
  if (!(rows >= 1 && rows <= 2 ** 31)) {
    throw new Error(
      `--rows must be a whole number from 1 to ${2 ** 31}, got ${values.rows}\n\n${USAGE}`,
    );
  }
  if (values.out === "") throw new Error(`--out needs a file name\n\n${USAGE}`);
  return { rows, out: values.out };
}

/** Runs the command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const start = startCommand(args, {
    parse: parseSampleArgs,
    usage: USAGE,
    out: { stdout: (line) => console.log(line), stderr: (line) => console.error(line) },
  });
  if ("exitCode" in start) return start.exitCode;
  const parsed = start.args;
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
