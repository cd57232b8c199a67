/**
 * `deno task aggregate <in.csv> [--out <result.csv>]`: aggregates a local file (plain or gzip),
 * writes the result CSV (default: beside the input, `<in>.result.csv`) and prints one JSON line
 * describing it.
 *
 * @module
 */

import { aggregateInputFile } from "../aggregate/sales_input.ts";
import { formatResultCsv } from "../aggregate/result_csv.ts";

const USAGE = "Usage: deno task aggregate <in.csv> [--out <result.csv>]";

/** Parsed command line. */
export interface AggregateArgs {
  input: string;
  output: string;
}

/** Parses the arguments, or throws an Error whose message is meant for the user. */
export function parseAggregateArgs(args: string[]): AggregateArgs {
  let input: string | undefined;
  let output: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--out" || arg === "-o") {
      output = args[++i];
      if (!output) throw new Error(`--out needs a file name\n${USAGE}`);
    } else if (arg.startsWith("--out=")) {
      output = arg.slice("--out=".length);
    } else if (arg === "--help" || arg === "-h") {
      throw new Error(USAGE);
    } else if (arg.startsWith("-") && arg !== "-") {
      throw new Error(`Unknown option ${arg}\n${USAGE}`);
    } else if (input === undefined) {
      input = arg;
    } else {
      throw new Error(`Unexpected argument ${arg}\n${USAGE}`);
    }
  }
  if (!input) throw new Error(`Missing the input file\n${USAGE}`);
  return { input, output: output ?? defaultOutputPath(input) };
}

/** `sales.csv` (or `sales.csv.gz`) -> `sales.result.csv`; other names get `.result.csv` appended. */
export function defaultOutputPath(input: string): string {
  return input.replace(/\.csv(\.gz)?$/i, "") + ".result.csv";
}

/** Runs the command; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed: AggregateArgs;
  try {
    parsed = parseAggregateArgs(args);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  try {
    const info = await Deno.stat(parsed.input);
    if (!info.isFile) throw new Error("not a regular file");
  } catch (error) {
    console.error(`Cannot read ${parsed.input}: ${describe(error)}`);
    return 1;
  }
  try {
    const result = await aggregateInputFile(parsed.input);
    const temp = `${parsed.output}.tmp-${crypto.randomUUID()}`;
    try {
      await Deno.writeTextFile(temp, formatResultCsv(result.totals));
      await Deno.rename(temp, parsed.output);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      console.error(`Cannot write ${parsed.output}: ${describe(error)}`);
      return 1;
    }
    console.log(JSON.stringify({
      rows: result.rows,
      bad_rows: result.badRows,
      departments: result.departments,
      elapsed_sec: result.elapsedSec,
      output: parsed.output,
      bad_row_samples: result.badRowSamples,
    }));
    return 0;
  } catch (error) {
    console.error(`Cannot aggregate ${parsed.input}: ${describe(error)}`);
    return 1;
  }
}

function describe(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
