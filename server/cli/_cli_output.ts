/**
 * What `deno task aggregate`, `upload` and `download` share with their users: the wording of the
 * failures they can meet, the CSV check before any work, the status line redrawn on a terminal
 * while they work, and the human summary printed on a terminal in place of the JSON line that
 * scripts read.
 *
 * @module
 */

import { csvRefusal, SNIFF_BYTES } from "../aggregate/looks_like_csv.ts";
import { AppError, Status, statusName } from "../errors.ts";
import type { LineOutput } from "./_cli_args.ts";

/** A bad row as both commands print it. */
export interface SummaryBadRow {
  line: number;
  reason: string;
  raw: string;
  /** The file it is in; shown when the summary lists several {@linkcode Summary.files}. */
  file?: string;
}

/** One file of several and its own counts, as the summary lists it. */
export interface SummaryFile {
  name: string;
  rows: number;
  badRows: number;
  departments: number;
}

/** What a human summary reports. */
export interface Summary {
  /** What was done, for the first line: `"Aggregated sales.csv"`, `"Uploaded sales.csv"`. */
  done: string;
  rows: number;
  badRows: number;
  departments: number;
  /** Seconds, as measured by the command. */
  seconds: number;
  /** Bytes of the input file, for the speed. */
  bytes: number;
  /** Where the result is, one `label: place` line each. */
  where: [label: string, place: string][];
  badRowSamples: SummaryBadRow[];
  /** Each file's counts, listed when there are several (each bad row then names its file). @default {[]} */
  files?: SummaryFile[];
}

/** How many bad rows the human summary lists. */
export const SUMMARY_BAD_ROWS = 5;
/** Characters of a bad row shown, once escaped; a binary file's rows can be long. */
const RAW_WIDTH = 100;

/** `Cannot read <path>: <reason>`, worded the same by both commands. */
export function cannotRead(path: string, error: unknown): string {
  return `Cannot read ${path}: ${reasonOf(error)}`;
}

/** A short reason for a file-system error: `no such file`, `permission denied`, ... */
export function reasonOf(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}

/** The outcome of {@linkcode checkInputFile}: the file's size, or what to tell the user. */
export type InputCheck = { size: number; problem?: undefined } | { problem: string };

/**
 * Checks that `path` is a readable regular file and, unless `force`, that it looks like a CSV
 * ({@linkcode csvRefusal}, the page's check and words). `action` completes the hint that names
 * `--force`: "send it", "aggregate it".
 */
export async function checkInputFile(
  path: string,
  options: { force: boolean; action: string },
): Promise<InputCheck> {
  let size: number;
  const head = new Uint8Array(SNIFF_BYTES);
  let headBytes = 0;
  try {
    using file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (!info.isFile) return { problem: `Cannot read ${path}: not a regular file` };
    size = info.size;
    while (headBytes < head.length) {
      const read = await file.read(head.subarray(headBytes));
      if (read === null) break;
      headBytes += read;
    }
  } catch (error) {
    return { problem: cannotRead(path, error) };
  }
  if (!options.force) {
    const refusal = csvRefusal(path, size, head.subarray(0, headBytes));
    if (refusal !== undefined) {
      return { problem: `${refusal} Pass --force to ${options.action} anyway` };
    }
  }
  return { size };
}

/** Where a command that calls the service writes; tests pass their own. */
export interface ServiceCommandIo {
  /** One line on stdout (the JSON line or the summary, or the help). */
  stdout: (line: string) => void;
  /** Text on stderr as it is: the status line redraws itself, so line breaks are the caller's. */
  stderr: (text: string) => void;
  /** Whether stderr is a terminal, so progress makes sense. */
  stderrIsTerminal: boolean;
  /**
   * Whether stdout is a terminal: then a summary for people replaces the JSON line.
   * @default {false}
   */
  stdoutIsTerminal?: boolean;
}

/** `io` as whole lines: each line on stderr gets its line break. */
export function lineOutput(io: ServiceCommandIo): LineOutput {
  return { stdout: io.stdout, stderr: (line) => io.stderr(`${line}\n`) };
}

/** The process's own stdout and stderr. */
export const processIo: ServiceCommandIo = {
  stdout: (line) => console.log(line),
  stderr: (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)),
  stderrIsTerminal: Deno.stderr.isTerminal(),
  stdoutIsTerminal: Deno.stdout.isTerminal(),
};

/**
 * A failed call to the service at `address`, worded for the user: how to start a service that
 * cannot be reached, and what to do about a missing or refused `SALES_API_TOKEN`.
 */
export function describeCallError(error: AppError, address: string, tokenSent: boolean): string {
  const status = statusName(error.code);
  if (error.code === Status.UNAVAILABLE) {
    // grpc-js's own text ("No connection established. Last error: ...") helps nobody here.
    return `Cannot reach the service at ${address}. Is it running? Start it with \`deno task start\`.`;
  }
  if (error.code === Status.UNAUTHENTICATED) {
    return tokenSent
      ? `The sales service at ${address} refused SALES_API_TOKEN: ${error.message}; check that it matches the server's token (${status})`
      : `The sales service at ${address} requires an access token: set SALES_API_TOKEN in the environment to the server's token (${status})`;
  }
  return `${error.message} (${status})`;
}

/** One line on stderr redrawn in place: what a command is doing, while it does it. */
export class StatusLine {
  #drawn = false;

  constructor(readonly write: (text: string) => void) {}

  /** Replaces the line with `line`. */
  draw(line: string): void {
    this.#drawn = true;
    this.write(`\r${line}\x1b[K`);
  }

  /** Leaves the line as it stands and moves on to the next. */
  end(): void {
    this.write("\n");
  }

  /** Clears the line so an error message starts on a fresh one. */
  abandon(): void {
    if (this.#drawn) this.write("\r\x1b[K");
  }
}

/** `[#########---------------------]  30%`: `fraction` (0 to 1) as a bar 30 characters wide. */
export function progressBar(fraction: number): string {
  const width = 30;
  const filled = Math.round(fraction * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${
    (fraction * 100).toFixed(0).padStart(3)
  }%`;
}

/** `text` with control characters (C0, DEL, C1) shown as `\n`, `\t`, `\x00`-style escapes. */
export function escapeControl(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\\]/g, (char) => {
    switch (char) {
      case "\\":
        return "\\\\";
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
      default:
        return `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`;
    }
  });
}

/** A whole number with thousands separators. */
export function formatCount(count: number): string {
  return count.toLocaleString("en-US");
}

/** Seconds for people: two decimals under 10 s, one under a minute, then `m:ss`. */
export function formatSeconds(seconds: number): string {
  if (seconds < 10) return `${seconds.toFixed(2)} s`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")} min`;
}

/** The summary a person reads on a terminal: a few lines, ending with a line break. */
export function formatSummary(summary: Summary): string {
  const plural = (count: number, one: string, many: string) =>
    `${formatCount(count)} ${count === 1 ? one : many}`;
  const speed = summary.seconds > 0 ? summary.bytes / 1e6 / summary.seconds : 0;
  const lines = [
    `${summary.done}: ${plural(summary.rows, "row", "rows")} ` +
    `(${plural(summary.badRows, "bad row", "bad rows")}), ` +
    `${plural(summary.departments, "department", "departments")}`,
    `  Time     ${formatSeconds(summary.seconds)}, ${speed.toFixed(1)} MB/s ` +
    `(${(summary.bytes / 1e6).toFixed(1)} MB)`,
  ];
  const labelWidth = Math.max(8, ...summary.where.map(([label]) => label.length + 1));
  for (const [label, place] of summary.where) lines.push(`  ${label.padEnd(labelWidth)} ${place}`);
  lines.push(...formatFilesAndBadRows(summary));
  return lines.join("\n") + "\n";
}

/**
 * The end of a summary: each file's counts when there are several `files`, then the first
 * {@linkcode SUMMARY_BAD_ROWS} bad rows, each naming its file when there are several. No lines
 * for one file without bad rows.
 */
export function formatFilesAndBadRows(
  summary: Pick<Summary, "files" | "badRows" | "badRowSamples">,
): string[] {
  const plural = (count: number, one: string, many: string) =>
    `${formatCount(count)} ${count === 1 ? one : many}`;
  const lines: string[] = [];
  const files = summary.files ?? [];
  const several = files.length > 1;
  if (several) {
    lines.push(`Files:`);
    const nameWidth = Math.max(...files.map((file) => escapeControl(file.name).length));
    for (const file of files) {
      lines.push(
        `  ${escapeControl(file.name).padEnd(nameWidth)}  ${plural(file.rows, "row", "rows")} ` +
          `(${plural(file.badRows, "bad row", "bad rows")}), ` +
          plural(file.departments, "department", "departments"),
      );
    }
  }
  const shown = summary.badRowSamples.slice(0, SUMMARY_BAD_ROWS);
  if (shown.length > 0) {
    lines.push(
      summary.badRows > shown.length
        ? `First ${shown.length} of ${formatCount(summary.badRows)} bad rows:`
        : `Bad ${shown.length === 1 ? "row" : "rows"}:`,
    );
    for (const row of shown) {
      const raw = escapeControl(row.raw);
      const clipped = raw.length > RAW_WIDTH ? `${raw.slice(0, RAW_WIDTH)}…` : raw;
      const where = several && row.file !== undefined ? `${escapeControl(row.file)} ` : "";
      lines.push(`  ${where}line ${formatCount(row.line)}: ${row.reason}: ${clipped}`);
    }
  }
  return lines;
}
