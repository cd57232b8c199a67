/**
 * `deno task aggregate <in.csv>... [--out <result.csv>] [--threads <n>]`: aggregates local files
 * (plain or gzip) into one result and writes the result CSV (default: beside the first input,
 * `<in>.result.csv`). On a terminal it prints a short summary; otherwise (or with `--json`) one
 * JSON line describing the result, for scripts. Each file is read on its own, one after another:
 * a plain file by `--threads` threads (default: one per core); gzip by one, with inflation on a
 * second. A file that does not look like a CSV (empty, or binary) is refused unless `--force` is
 * given.
 *
 * @module
 */

import { mergeResults } from "../aggregate/merge_results.ts";
import { aggregateFileParallel } from "../aggregate/parallel_aggregate.ts";
import { resultCsvChunks } from "../aggregate/result_csv.ts";
import type { AggregateResult } from "../aggregate/sales_aggregator.ts";
import { aggregateInputFile } from "../aggregate/sales_input.ts";
import { parseCommandLine, startCommand } from "./_cli_args.ts";
import { checkInputFile, formatSummary, reasonOf } from "./_cli_output.ts";
import { writeAll } from "../storage/result_store.ts";

const USAGE = `Usage: deno task aggregate <in.csv>... [options]

Totals the sales per department of local CSVs (or .csv.gz), without a server, and writes
the result CSV. Several files give one result: each is read on its own (its own header,
line numbers and gzip), and the totals are added up. On a terminal it prints a summary;
otherwise it prints one JSON line.

Options:
  -o, --out file      where to write the result (default: <in>.result.csv beside the
                      first input)
  -t, --threads n     threads for each plain file (default: one per core)
  --json              print the JSON line even on a terminal
  --force             aggregate a file that does not look like a CSV (empty, or binary)
  -h, --help          show this help

Examples:
  deno task aggregate sample.csv
  deno task aggregate sales.csv.gz --out totals.csv --json
  deno task aggregate january.csv february.csv.gz march.csv --out q1.csv`;

/** Parsed command line. */
export interface AggregateArgs {
  /** The first input file. */
  input: string;
  /** Every input file, in the order given (`input` first). */
  inputs: string[];
  output: string;
  /** Threads for a plain file. */
  threads: number;
  /** Whether to print the JSON line even on a terminal (`--json`). @default {false} */
  json: boolean;
  /** Whether to aggregate a file that does not look like a CSV (`--force`). @default {false} */
  force: boolean;
}

/**
 * Parses the arguments: `"help"` for `--help`, else the options; throws an Error whose message is
 * meant for the user.
 */
export function parseAggregateArgs(args: string[]): AggregateArgs | "help" {
  const { values, positionals } = parseCommandLine(args, {
    out: { type: "string", short: "o" },
    threads: { type: "string", short: "t" },
    json: { type: "boolean", default: false },
    force: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  }, USAGE);
  if (values.help) return "help";
  const input = positionals[0];
  if (!input) throw new Error(`Missing the input file\n${USAGE}`);
  if (values.out === "") throw new Error(`--out needs a file name\n${USAGE}`);
  let threads = navigator.hardwareConcurrency;
  if (values.threads !== undefined) {
    threads = Number(values.threads);
    if (!/^[0-9]+$/.test(values.threads) || threads < 1 || threads > 256) {
      throw new Error(
        `--threads needs a whole number from 1 to 256, not ${values.threads}\n${USAGE}`,
      );
    }
  }
  return {
    input,
    inputs: positionals,
    output: values.out ?? defaultOutputPath(input),
    threads,
    json: values.json,
    force: values.force,
  };
}

/** `sales.csv` (or `sales.csv.gz`) -> `sales.result.csv`; other names get `.result.csv` appended. */
export function defaultOutputPath(input: string): string {
  return input.replace(/\.csv(\.gz)?$/i, "") + ".result.csv";
}

/** Where the command writes; tests pass their own. */
export interface AggregateIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stdout is a terminal: then a summary for people replaces the JSON line. */
  stdoutIsTerminal: boolean;
}

const defaultIo: AggregateIo = {
  stdout: (text) => console.log(text),
  stderr: (text) => console.error(text),
  stdoutIsTerminal: Deno.stdout.isTerminal(),
};

/** Runs the command; returns the process exit code. */
export async function main(args: string[], io: AggregateIo = defaultIo): Promise<number> {
  const start = startCommand(args, { parse: parseAggregateArgs, usage: USAGE, out: io });
  if ("exitCode" in start) return start.exitCode;
  const parsed = start.args;
  let bytes = 0;
  for (const input of parsed.inputs) {
    const checked = await checkInputFile(input, { force: parsed.force, action: "aggregate it" });
    if (checked.problem !== undefined) {
      io.stderr(`error: ${checked.problem}`);
      return 1;
    }
    bytes += checked.size;
  }
  const several = parsed.inputs.length > 1;
  /** The file being read, for the error message. */
  let current = parsed.input;
  try {
    const result = await aggregateFiles(parsed.inputs, {
      threads: parsed.threads,
      onFile: (input) => current = input,
    });
    const temp = `${parsed.output}.tmp-${crypto.randomUUID()}`;
    try {
      // Written piece by piece: a million departments never become one string.
      using file = await Deno.open(temp, { write: true, createNew: true });
      for (const chunk of resultCsvChunks(result.departmentTotals)) await writeAll(file, chunk);
      await Deno.rename(temp, parsed.output);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      io.stderr(`error: Cannot write ${parsed.output}: ${reasonOf(error)}`);
      return 1;
    }
    if (parsed.json || !io.stdoutIsTerminal) {
      // One file prints what it always printed; several add the per-file list and sample files.
      io.stdout(JSON.stringify({
        rows: result.rows,
        bad_rows: result.badRows,
        departments: result.departments,
        elapsed_sec: result.elapsedSec,
        output: parsed.output,
        bad_row_samples: result.badRowSamples.map(({ line, reason, raw, file, fileIndex }) =>
          several ? { line, reason, raw, file, file_index: fileIndex } : { line, reason, raw }
        ),
        ...several
          ? {
            files: result.files.map(({ name, rows, badRows, departments }) => ({
              name,
              rows,
              bad_rows: badRows,
              departments,
            })),
          }
          : {},
      }));
    } else {
      io.stdout(
        formatSummary({
          done: `Aggregated ${parsed.inputs.join(", ")}`,
          rows: result.rows,
          badRows: result.badRows,
          departments: result.departments,
          seconds: result.elapsedSec,
          bytes,
          where: [["Result", parsed.output]],
          badRowSamples: result.badRowSamples,
          ...(several ? { files: result.files } : {}),
        }).trimEnd(),
      );
    }
    return 0;
  } catch (error) {
    io.stderr(`error: Cannot aggregate ${current}: ${reasonOf(error)}`);
    return 1;
  }
}

/** Options for {@linkcode aggregateFiles}. */
export interface AggregateFilesOptions {
  /** Threads for each plain file. @default {navigator.hardwareConcurrency} */
  threads?: number;
  /** Told each file as its reading starts. */
  onFile?: (input: string) => void;
}

/**
 * Aggregates local files into one result, as `deno task aggregate` does: one after another, each
 * on its own (plain on `threads` threads, gzip through SalesInput), the results added up.
 */
export async function aggregateFiles(
  inputs: string[],
  options: AggregateFilesOptions = {},
): Promise<AggregateResult> {
  const threads = options.threads ?? navigator.hardwareConcurrency;
  if (inputs.length === 1) {
    options.onFile?.(inputs[0]);
    return await aggregate(inputs[0], threads);
  }
  async function* each(): AsyncGenerator<AggregateResult> {
    for (const input of inputs) {
      options.onFile?.(input);
      yield await aggregate(input, threads);
    }
  }
  return await mergeResults(each());
}

/** Plain files on `threads` threads; gzip (recognized by its magic bytes) through SalesInput. */
async function aggregate(input: string, threads: number): Promise<AggregateResult> {
  const head = new Uint8Array(2);
  {
    using file = await Deno.open(input, { read: true });
    let length = 0;
    while (length < 2) {
      const read = await file.read(head.subarray(length));
      if (read === null) break;
      length += read;
    }
  }
  const isGzip = head[0] === 0x1f && head[1] === 0x8b;
  const filename = input;
  return isGzip
    ? await aggregateInputFile(input, { filename })
    : await aggregateFileParallel(input, { threads, filename });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
