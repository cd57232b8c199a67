/**
 * `deno task download <result id|url> [options]`: saves a result CSV. Given a result id, it asks
 * the service (`GetResult`) for the result's counts, its name and a fresh download URL (signed
 * anew when the server signs URLs, so an expired link is never a problem); given a URL, it
 * downloads that URL as it is. Either way the CSV comes from the result server over HTTP,
 * streamed to disk in constant memory, into `<file>.part` and renamed into place once whole. An
 * interrupted download resumes: the bytes already in `<file>.part` are kept and only the rest is
 * asked for with `Range` (results never change, and `If-Range` makes sure of it).
 *
 * The file is named `<original name>.result.csv` unless `--out` says otherwise: from `GetResult`
 * for an id, from the response's `Content-Disposition` for a URL. On a terminal it shows a
 * progress bar on stderr and a short summary on stdout; otherwise (or with `--json`) it prints one
 * JSON line for scripts. For a result of several files, both also list each file's counts and the
 * first bad rows with their files, as `deno task upload` does; a single file's output is as it was.
 *
 * @module
 */

import { AppError } from "../errors.ts";
import { GrpcSalesClient } from "../grpc/sales_client.ts";
import type { ResultDescription } from "../service/types.ts";
import { fileNameFromDisposition } from "../storage/result_file_name.ts";
import { isResultId, RESULT_CSV_NAME } from "../storage/result_id.ts";
import { writeAll } from "../storage/result_store.ts";
import { parseAddress, parseCommandLine, type ServiceEnv, startCommand } from "./_cli_args.ts";
import {
  describeCallError,
  formatCount,
  formatFilesAndBadRows,
  formatSeconds,
  lineOutput,
  processIo,
  progressBar,
  reasonOf,
  type ServiceCommandIo,
  StatusLine,
} from "./_cli_output.ts";

const USAGE = `Usage: deno task download <result_id|url> [options]

Saves a result CSV from a running service. Given a result id, it asks the service for the
result and a fresh download link; given a URL (a download_url), it fetches that URL.
The file is named <original name>.result.csv unless --out says otherwise. An interrupted
download resumes where it stopped. On a terminal it shows progress and a summary; otherwise
it prints one JSON line.

Options:
  --out file         where to save the CSV (default: <original name>.result.csv here)
  --addr host:port   the service's gRPC address, to look up a result id
                     (default localhost:50051)
  --json             print the JSON line even on a terminal
  -h, --help         show this help

Environment:
  SALES_API_TOKEN    the access token, when the service requires one

Examples:
  deno task download 0123456789abcdef0123456789abcdef
  deno task download 'http://localhost:8080/results/0123456789abcdef0123456789abcdef.csv' --out totals.csv --json`;

/** Parsed command line. */
export interface DownloadArgs {
  /** A result id, or an http(s) URL of a result. */
  target: { resultId: string } | { url: URL };
  /** Where to save; undefined: the result's own name in the current folder. */
  output: string | undefined;
  /** The service's gRPC address, for a result id. @default {"localhost:50051"} */
  address: string;
  /** Whether to print the JSON line even on a terminal. @default {false} */
  json: boolean;
}

/**
 * Parses the arguments: `"help"` for `--help`, else the options; throws an Error whose message,
 * the usage included, is meant for the user.
 */
export function parseDownloadArgs(args: string[]): DownloadArgs | "help" {
  const { values, positionals } = parseCommandLine(args, {
    out: { type: "string", short: "o" },
    addr: { type: "string", default: "localhost:50051" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (values.help) return "help";
  if (positionals.length > 1) throw new Error(`Unexpected argument ${positionals[1]}\n\n${USAGE}`);
  const given = positionals[0];
  if (!given) throw new Error(`Missing the result id or URL to download\n\n${USAGE}`);
  if (values.out === "") throw new Error(`--out needs a file name\n\n${USAGE}`);
  parseAddress(values.addr, USAGE);
  let target: DownloadArgs["target"];
  if (isResultId(given)) {
    target = { resultId: given };
  } else if (/^https?:\/\//i.test(given) && URL.canParse(given)) {
    target = { url: new URL(given) };
  } else {
    throw new Error(
      `Expected a result id (32 lowercase hex characters) or an http(s) URL, got ${
        JSON.stringify(given.slice(0, 100))
      }\n\n${USAGE}`,
    );
  }
  return { target, output: values.out, address: values.addr, json: values.json };
}

/** Where the command writes; tests pass their own. */
export type DownloadIo = ServiceCommandIo;

/** The environment variables the command reads: `SALES_API_TOKEN` is sent to `GetResult`. */
export type DownloadEnv = ServiceEnv;

/** A failure worded for the user, with the exit code to give. */
class DownloadFailure extends Error {
  override name = "DownloadFailure";
}

/** What a finished download reports. */
interface Saved {
  output: string;
  bytes: number;
  resumedFrom: number;
  url: string;
}

/** Runs the command; returns the process exit code. */
export async function main(
  args: string[],
  io: DownloadIo = processIo,
  env: DownloadEnv = {},
): Promise<number> {
  const start = startCommand(args, {
    parse: parseDownloadArgs,
    usage: USAGE,
    out: lineOutput(io),
    env,
  });
  if ("exitCode" in start) return start.exitCode;
  const { args: parsed, token } = start;

  const started = performance.now();
  const progress = io.stderrIsTerminal ? new ProgressBar(io.stderr) : undefined;
  let description: ResultDescription | undefined;
  try {
    let url: URL;
    let name: string | undefined;
    if ("resultId" in parsed.target) {
      progress?.status(`Asking ${parsed.address} for result ${parsed.target.resultId}…`);
      description = await describeResult(parsed.target.resultId, parsed.address, token);
      url = new URL(description.downloadUrl);
      name = lastSegment(description.downloadFilename);
    } else {
      url = parsed.target.url;
    }
    const saved = await download(url, parsed.output, name, progress);
    const seconds = (performance.now() - started) / 1000;
    progress?.done(saved.bytes);
    const resultId = description?.resultId ?? resultIdOf(url);
    if (parsed.json || !io.stdoutIsTerminal) {
      io.stdout(JSON.stringify({
        ...(resultId === undefined ? {} : { result_id: resultId }),
        output: saved.output,
        bytes: saved.bytes,
        ...(saved.resumedFrom > 0 ? { resumed_from: saved.resumedFrom } : {}),
        elapsed_sec: Math.round(seconds * 1000) / 1000,
        ...(description === undefined ? {} : describedJson(description)),
      }));
    } else {
      io.stdout(summary(saved, seconds, description));
    }
    return 0;
  } catch (error) {
    progress?.abandon();
    const message = error instanceof DownloadFailure
      ? error.message
      : error instanceof AppError
      ? describeCallError(error, parsed.address, token !== undefined)
      : reasonOf(error);
    io.stderr(`error: ${message}\n`);
    return 1;
  }
}

/** `GetResult` for `resultId`, on a connection closed before returning. */
async function describeResult(
  resultId: string,
  address: string,
  token: string | undefined,
): Promise<ResultDescription> {
  const client = new GrpcSalesClient(address, {
    metadata: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  try {
    return await client.getResult(resultId);
  } finally {
    client.close();
  }
}

/**
 * Downloads `url` into `output` (or, when undefined, `name`, else the name the server gives),
 * through `<file>.part`, resuming from what that file already holds.
 */
async function download(
  url: URL,
  output: string | undefined,
  name: string | undefined,
  progress: ProgressBar | undefined,
): Promise<Saved> {
  let target = output ?? name;
  if (target === undefined) {
    // The name comes from the server: ask for it first (HEAD answers as GET would).
    const head = await request(url, { method: "HEAD" });
    if (!head.ok) throw await httpFailure(url, head);
    target = fileNameFromDisposition(head.headers.get("Content-Disposition")) ??
      lastSegment(decodeURIComponent(url.pathname)) ?? "result.csv";
  }
  const partPath = `${target}.part`;
  let offset = await sizeOf(partPath);
  const headers = new Headers();
  if (offset > 0) headers.set("Range", `bytes=${offset}-`);
  progress?.status(`Downloading ${url.host}…`);
  let response = await request(url, { headers });
  if (response.status === 416 && offset > 0) {
    await response.body?.cancel();
    // The part file may already hold the whole result: the server says how long it is.
    const total = /^bytes \*\/(\d+)$/.exec(response.headers.get("Content-Range") ?? "")?.[1];
    if (total !== undefined && Number(total) === offset) {
      await Deno.rename(partPath, target);
      return { output: target, bytes: offset, resumedFrom: offset, url: url.href };
    }
    // Longer than the result: not a part of it. Start again.
    offset = 0;
    response = await request(url, {});
  }
  if (!response.ok) throw await httpFailure(url, response);
  let total: number | undefined;
  if (response.status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers.get("Content-Range") ?? "");
    if (range === null || Number(range[1]) !== offset) {
      await response.body?.cancel();
      throw new DownloadFailure(
        `The result server at ${url.host} answered a range other than the one asked for`,
      );
    }
    total = Number(range[3]);
  } else {
    // A whole answer (the server ignored the range): whatever the part file held is replaced.
    offset = 0;
    const length = response.headers.get("Content-Length");
    total = length === null ? undefined : Number(length);
  }
  let written = offset;
  const file = await Deno.open(partPath, {
    write: true,
    create: true,
    append: offset > 0,
    truncate: offset === 0,
  }).catch((error) => {
    throw new DownloadFailure(`Cannot write ${partPath}: ${reasonOf(error)}`);
  });
  try {
    progress?.start(offset, total);
    if (response.body !== null) {
      for await (const chunk of response.body) {
        await writeAll(file, chunk);
        written += chunk.length;
        progress?.update(written);
      }
    }
  } catch (error) {
    throw new DownloadFailure(
      `The download from ${url.host} stopped after ${formatCount(written)} bytes: ${
        reasonOf(error)
      }. Run the same command again to resume`,
    );
  } finally {
    file.close();
  }
  if (total !== undefined && written !== total) {
    throw new DownloadFailure(
      `The download from ${url.host} ended after ${formatCount(written)} of ${
        formatCount(total)
      } bytes. Run the same command again to resume`,
    );
  }
  await Deno.rename(partPath, target);
  return { output: target, bytes: written, resumedFrom: offset, url: url.href };
}

/** `fetch`, with a network failure worded for the user. */
async function request(url: URL, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: "follow" });
  } catch (error) {
    throw new DownloadFailure(
      `Cannot reach the result server at ${url.host}: ${reasonOf(error)}. Is the service running?`,
    );
  }
}

/** The server's refusal, with its own words (plain text) and what to do about an old link. */
async function httpFailure(url: URL, response: Response): Promise<DownloadFailure> {
  const text = (await firstBytesOf(response, 4096)).trim();
  const reason = text.split("\n")[0].slice(0, 200) || response.statusText;
  const resultId = resultIdOf(url);
  const hint = response.status === 403 && resultId !== undefined
    ? `. Download it by id for a fresh link: deno task download ${resultId}`
    : "";
  return new DownloadFailure(
    `The result server at ${url.host} answered ${response.status}: ${reason}${hint}`,
  );
}

/** At most `limit` bytes of a response body as text; the rest is never read. */
async function firstBytesOf(response: Response, limit: number): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let length = 0;
  while (length < limit) {
    const { value, done } = await reader.read();
    if (done) break;
    const part = value.subarray(0, limit - length);
    text += decoder.decode(part, { stream: true });
    length += part.length;
  }
  await reader.cancel().catch(() => {});
  return text + decoder.decode();
}

/** The result id a result URL names (`/results/<id>.csv`), if it does. */
function resultIdOf(url: URL): string | undefined {
  const at = url.pathname.lastIndexOf("/results/");
  if (at < 0) return undefined;
  return RESULT_CSV_NAME.exec(url.pathname.slice(at + "/results/".length))?.[1];
}

/** The last segment of a path, or undefined when that is empty or only dots. */
function lastSegment(path: string): string | undefined {
  const segment = path.split(/[/\\]/).pop()?.trim() ?? "";
  return segment === "" || /^\.+$/.test(segment) ? undefined : segment;
}

async function sizeOf(path: string): Promise<number> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? info.size : 0;
  } catch {
    return 0;
  }
}

function summary(saved: Saved, seconds: number, description?: ResultDescription): string {
  const plural = (count: number, one: string, many: string) =>
    `${formatCount(count)} ${count === 1 ? one : many}`;
  const lines = [`Saved ${saved.output} (${plural(saved.bytes, "byte", "bytes")})`];
  if (description?.hasMetadata) {
    lines.push(
      `  Result   ${plural(description.departments, "department", "departments")} from ` +
        `${plural(description.rows, "row", "rows")} ` +
        `(${plural(description.badRows, "bad row", "bad rows")})` +
        (description.files.length > 1
          ? ` of ${plural(description.files.length, "file", "files")}`
          : description.filename === ""
          ? ""
          : ` of ${description.filename}`),
    );
  }
  if (saved.resumedFrom > 0) {
    lines.push(`  Resumed  from byte ${formatCount(saved.resumedFrom)}`);
  }
  lines.push(`  Time     ${formatSeconds(seconds)}`);
  // Several files: each file's counts and the first bad rows with their files, as upload shows.
  if (description !== undefined && description.files.length > 1) {
    lines.push(...formatFilesAndBadRows(description));
  }
  return lines.join("\n");
}

/**
 * What `GetResult` said, in the JSON line: snake_case, as `deno task upload` prints it. One file
 * prints what it always printed; several add each file's counts and the bad-row samples, each
 * with its file.
 */
function describedJson(description: ResultDescription): Record<string, unknown> {
  const json: Record<string, unknown> = {
    filename: description.filename,
    rows: description.rows,
    bad_rows: description.badRows,
    departments: description.departments,
  };
  if (description.files.length <= 1) return json;
  return {
    ...json,
    bad_row_samples: description.badRowSamples.map(({ line, reason, raw, file, fileIndex }) => ({
      line,
      reason,
      raw,
      file,
      file_index: fileIndex,
    })),
    files: description.files.map(({ name, rows, badRows, departments }) => ({
      name,
      rows,
      bad_rows: badRows,
      departments,
    })),
  };
}

/** One status line on stderr: what is happening, then a bar of bytes saved. */
class ProgressBar {
  #total: number | undefined;
  #startBytes = 0;
  #started = performance.now();
  #lastDraw = 0;
  #line: StatusLine;

  constructor(write: (text: string) => void) {
    this.#line = new StatusLine(write);
  }

  status(text: string): void {
    this.#line.draw(text);
  }

  start(bytes: number, total: number | undefined): void {
    this.#total = total;
    this.#startBytes = bytes;
    this.#started = performance.now();
    this.#line.draw(this.#bar(bytes));
  }

  update(bytes: number): void {
    const now = performance.now();
    if (now - this.#lastDraw < 100 && bytes !== this.#total) return;
    this.#lastDraw = now;
    this.#line.draw(this.#bar(bytes));
  }

  /** Leaves the finished bar on its own line. */
  done(bytes: number): void {
    this.#line.draw(this.#bar(bytes));
    this.#line.end();
  }

  abandon(): void {
    this.#line.abandon();
  }

  #bar(bytes: number): string {
    const seconds = (performance.now() - this.#started) / 1000;
    const rate = seconds > 0 ? (bytes - this.#startBytes) / seconds : 0;
    const speed = `${(rate / 1e6).toFixed(1)} MB/s`;
    if (this.#total === undefined || this.#total === 0) return `${size(bytes)}  ${speed}`;
    const bar = progressBar(Math.min(bytes / this.#total, 1));
    return `${bar}  ${size(bytes)} / ${size(this.#total)}  ${speed}`;
  }
}

/** Bytes for people: kB under a megabyte, then MB. */
function size(bytes: number): string {
  return bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args, processIo, { SALES_API_TOKEN: Deno.env.get("SALES_API_TOKEN") }));
}
