/**
 * `deno task upload <file.csv>... [options]`: streams one CSV or several (into one result, each
 * read by the server on its own: its own header, line numbers and gzip) to the service with `UploadCSVStream`
 * (with `--chunked`: the resumable `StartUpload`/`AppendUpload`/`FinishUpload` calls the page
 * uses, each carrying one `x-upload-id` routing header so that a proxy keeps them on one replica),
 * gzip-compressed on the way unless `--no-compress` is given or the file already is gzip. On a
 * terminal it shows "Connecting…", then progress, then "Computing totals…" on stderr, and a short
 * summary on stdout; otherwise (or with `--json`) it prints the response as one JSON line on
 * stdout for scripts. With `--out`, it downloads the result CSV.
 *
 * The file is read only as fast as the connection takes it, so memory stays flat whatever its
 * size, and a stalled server stops the reading (see `MAX_UNSENT_BYTES` in the client).
 *
 * The file is compressed as a gzip stream in the messages' `data`, not with gRPC message
 * compression (`grpc-encoding: gzip`): the service then inflates it with its own checked inflater
 * (CRC-32 and length checked, output bounded by `MAX_UPLOAD_BYTES` in flat memory, corrupt data
 * refused with `INVALID_ARGUMENT`), the same path as a `.csv.gz` and the page's uploads. With
 * message compression grpc-js would inflate each whole message before the service sees it, while
 * `MAX_MESSAGE_BYTES` and the server's buffer budget count the compressed bytes received.
 *
 * When the server requires a token (`SALES_API_TOKEN` on the server), set the same
 * `SALES_API_TOKEN` in the environment: it is sent as `authorization: Bearer <token>` metadata.
 *
 * @module
 */

import { basename } from "node:path";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { AppError, Status, statusName } from "../errors.ts";
import { GrpcSalesClient } from "../grpc/sales_client.ts";
import type { UploadResponse } from "../service/types.ts";
import { parseAddress, parseCommandLine, type ServiceEnv, startCommand } from "./_cli_args.ts";
import {
  cannotRead,
  checkInputFile,
  describeCallError,
  formatSummary,
  lineOutput,
  processIo,
  progressBar,
  type ServiceCommandIo,
  StatusLine,
} from "./_cli_output.ts";

const USAGE = `Usage: deno task upload <file.csv>... [options]

Sends sales CSVs (or .csv.gz) to a running service, which totals them and stores one result.
Several files give one result: each is read on its own (its own header, line numbers and
gzip), and the totals are added up. On a terminal it shows progress and a summary; otherwise
it prints one JSON line.

Options:
  --addr host:port   the service's gRPC address (default localhost:50051)
  --out file         also download the result CSV to this file
  --no-compress      send the file as it is (by default it is gzipped on the way,
                     unless it already is gzip)
  --chunked          use the resumable StartUpload/AppendUpload/FinishUpload calls, as the
                     page does, with an x-upload-id header for proxies
  --json             print the JSON line even on a terminal
  --force            send a file that does not look like a CSV (empty, or binary)
  -h, --help         show this help

Environment:
  SALES_API_TOKEN    the access token, when the service requires one

Examples:
  deno task upload sample.csv
  deno task upload big.csv.gz --addr 10.0.0.5:50051 --out totals.csv --json
  deno task upload january.csv february.csv.gz march.csv --out q1.csv`;

/**
 * Bytes per streamed message. 64 KiB uploads as fast as 256 KiB on loopback, and its buffers stay
 * under glibc's mmap threshold and V8's lazily freed external memory: the client's peak RSS on a
 * 1 GiB upload fell from about 165-190 MB (256 KiB) to about 120 MB.
 */
export const CHUNK_BYTES = 64 * 1024;

/** Parsed command line. */
export interface UploadArgs {
  /** The first file to upload. */
  input: string;
  /** Every file to upload, in the order given (`input` first), when there are several. */
  inputs?: string[];
  /** Server address, `host:port`. @default {"localhost:50051"} */
  address: string;
  /** Where to write the result CSV, if anywhere. */
  output: string | undefined;
  /** Whether to gzip the file on its way (`--no-compress` turns it off). @default {true} */
  compress: boolean;
  /**
   * Whether to use the resumable chunked RPCs, as the page does, instead of `UploadCSVStream`
   * (`--chunked`). @default {false}
   */
  chunked: boolean;
  /** Whether to print the JSON line even on a terminal (`--json`). @default {false} */
  json: boolean;
  /** Whether to send a file that does not look like a CSV (`--force`). @default {false} */
  force: boolean;
}

/**
 * zlib level for uploads. On sales CSV, level 2 deflates at about 170 MB/s on one core to 3.3x
 * smaller; level 1 is 230 MB/s but only 2.4x, level 6 3.7x at 90 MB/s. Level 2 beats both from a
 * 100 Mbit/s link up to about a gigabit.
 */
export const GZIP_LEVEL = 2;

/**
 * Parses the arguments: `"help"` for `--help`, else the options; throws an Error whose message,
 * the usage included, is meant for the user.
 */
export function parseUploadArgs(args: string[]): UploadArgs | "help" {
  const { values, positionals } = parseCommandLine(args, {
    addr: { type: "string", default: "localhost:50051" },
    out: { type: "string", short: "o" },
    "no-compress": { type: "boolean", default: false },
    chunked: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    force: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, USAGE);
  if (values.help) return "help";
  const input = positionals[0];
  if (!input) throw new Error(`Missing the CSV file to upload\n\n${USAGE}`);
  if (values.out === "") throw new Error(`--out needs a file name\n\n${USAGE}`);
  const address = parseAddress(values.addr, USAGE);
  return {
    input,
    // One file parses as it always did.
    ...(positionals.length > 1 ? { inputs: positionals } : {}),
    address,
    output: values.out,
    compress: !values["no-compress"],
    chunked: values.chunked,
    json: values.json,
    force: values.force,
  };
}

/** Where the command writes; tests pass their own. */
export type UploadIo = ServiceCommandIo;

/** The environment variables the command reads. */
export type UploadEnv = ServiceEnv;

/** Runs the command; returns the process exit code. */
export async function main(
  args: string[],
  io: UploadIo = processIo,
  env: UploadEnv = {},
): Promise<number> {
  const start = startCommand(args, {
    parse: parseUploadArgs,
    usage: USAGE,
    out: lineOutput(io),
    env,
  });
  if ("exitCode" in start) return start.exitCode;
  const { args: parsed, token } = start;

  const inputs = parsed.inputs ?? [parsed.input];
  const sizes: number[] = [];
  /** Whether each file goes as it is (gzip already, or --no-compress): its size is then known. */
  const asIs: boolean[] = [];
  for (const input of inputs) {
    const checked = await checkInputFile(input, { force: parsed.force, action: "send it" });
    if (checked.problem !== undefined) {
      io.stderr(`error: ${checked.problem}\n`);
      return 1;
    }
    sizes.push(checked.size);
    try {
      asIs.push(!parsed.compress || await isGzipFile(input));
    } catch (error) {
      io.stderr(`error: ${cannotRead(input, error)}\n`);
      return 1;
    }
  }
  const size = sizes.reduce((sum, bytes) => sum + bytes, 0);
  const several = inputs.length > 1;

  const client = new GrpcSalesClient(parsed.address, {
    metadata: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  const progress = io.stderrIsTerminal
    ? new ProgressBar(size, io.stderr, parsed.address, inputs.map((input) => basename(input)))
    : undefined;
  const started = performance.now();
  let opened = false;
  /** The file being read: its index, the bytes of the files before it, and its reading. */
  let current = 0;
  let readBefore = 0;
  let source: UploadChunks | undefined;
  const bytesRead = () => readBefore + (source?.fileBytesRead() ?? 0);
  try {
    progress?.connecting();
    let allRead = false;
    const open = () => {
      opened = true;
      if (allRead) progress?.computing(bytesRead(), current);
      else progress?.update(bytesRead(), current);
    };
    // The bar follows the files read, whatever goes on the wire; it starts once the call is open.
    const onProgress = () => {
      if (parsed.chunked && !opened) open();
      else if (opened) progress?.update(bytesRead(), current);
    };
    // Each file is opened when its turn comes, and read only as fast as the call takes it.
    const fileChunks = async function* (index: number): AsyncGenerator<Uint8Array> {
      current = index;
      source = await uploadChunks(await Deno.open(inputs[index], { read: true }), parsed.compress);
      yield* source.chunks;
      readBefore += source.fileBytesRead();
      source = undefined;
      if (index < inputs.length - 1) return;
      // A small upload is read whole before the call is open: "Computing" waits for it.
      allRead = true;
      if (opened) progress?.computing(bytesRead(), current);
    };
    const files = inputs.map((input, index) => ({
      name: basename(input),
      chunks: fileChunks(index),
    }));
    // Chunked: the size is known only when every file travels as it is (gzip's is known at the end).
    const response = parsed.chunked
      ? await client.uploadFilesResumable(files, asIs.every(Boolean) ? size : 0, { onProgress })
      : await client.uploadFilesStream(files, { onProgress, onOpen: open });
    const seconds = (performance.now() - started) / 1000;
    progress?.done();
    if (parsed.output !== undefined) {
      const data = await client.downloadResult(response.resultId);
      await Deno.writeFile(parsed.output, data);
    }
    if (parsed.json || !io.stdoutIsTerminal) {
      io.stdout(JSON.stringify(toJson(response, parsed.output, several)));
    } else {
      io.stdout(
        formatSummary({
          done: `Uploaded ${inputs.join(", ")}`,
          rows: response.rows,
          badRows: response.badRows,
          departments: response.departments,
          seconds,
          bytes: size,
          where: [
            ["Result", response.downloadUrl],
            ["Id", response.resultId],
            ...(parsed.output === undefined ? [] : [["Saved", parsed.output] as [string, string]]),
          ],
          badRowSamples: response.badRowSamples,
          ...(several ? { files: response.files } : {}),
        }).trimEnd(),
      );
    }
    return 0;
  } catch (error) {
    progress?.abandon();
    io.stderr(`error: ${describe(error, inputs[current], parsed, token !== undefined, opened)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/**
 * The file in fresh chunks of `chunkBytes` (the last may be shorter), closing it at the end.
 * grpc-js may hold a written chunk until it is sent, so no buffer is reused.
 */
export async function* readFileChunks(
  file: Deno.FsFile,
  chunkBytes = CHUNK_BYTES,
): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      const chunk = new Uint8Array(chunkBytes);
      let filled = 0;
      while (filled < chunk.length) {
        const read = await file.read(chunk.subarray(filled));
        if (read === null) break;
        filled += read;
      }
      if (filled > 0) yield chunk.subarray(0, filled);
      if (filled < chunk.length) return;
    }
  } finally {
    file.close();
  }
}

/** What {@linkcode uploadChunks} sends. */
export interface UploadChunks {
  /** The bytes to send, in order. */
  chunks: AsyncIterable<Uint8Array>;
  /** Whether they are the file gzip-compressed here (false: the file as it is). */
  compressed: boolean;
  /** Bytes of the file read so far. */
  fileBytesRead(): number;
}

/**
 * The bytes of `file` to send: gzip-compressed with {@linkcode GZIP_LEVEL} when `compress` and
 * the file is not gzip already, else the file as it is. Memory stays bounded: zlib's streams
 * hold a few chunks, and reading waits while the sender does. The file is closed at the end.
 */
export async function uploadChunks(file: Deno.FsFile, compress: boolean): Promise<UploadChunks> {
  const gzip = await startsWithGzipMagic(file);
  await file.seek(0, Deno.SeekMode.Start);
  let fileBytesRead = 0;
  async function* counted() {
    for await (const chunk of readFileChunks(file)) {
      fileBytesRead += chunk.length;
      yield chunk;
    }
  }
  const compressed = compress && !gzip;
  return {
    chunks: compressed ? gzipChunks(counted()) : counted(),
    compressed,
    fileBytesRead: () => fileBytesRead,
  };
}

/** `chunks` as one gzip stream, compressed by node:zlib with backpressure both ways. */
export async function* gzipChunks(
  chunks: AsyncIterable<Uint8Array>,
  level = GZIP_LEVEL,
): AsyncGenerator<Uint8Array> {
  const source = Readable.from(chunks, { objectMode: false });
  const gzip = createGzip({ level, chunkSize: CHUNK_BYTES });
  source.on("error", (error) => gzip.destroy(error));
  source.pipe(gzip);
  try {
    for await (const compressed of gzip) yield compressed as Uint8Array;
  } finally {
    // Stopping early (the call failed) also stops reading, which closes the file.
    source.destroy();
    gzip.destroy();
  }
}

/**
 * The response as the aggregate command prints its result: snake_case, one line. One file prints
 * what it always printed; several add each file's counts and each bad row's file.
 */
function toJson(
  response: UploadResponse,
  output: string | undefined,
  several: boolean,
): Record<string, unknown> {
  return {
    result_id: response.resultId,
    download_url: response.downloadUrl,
    rows: response.rows,
    bad_rows: response.badRows,
    departments: response.departments,
    elapsed_sec: response.elapsedSec,
    ...(output === undefined ? {} : { output }),
    bad_row_samples: response.badRowSamples.map(({ line, reason, raw, file, fileIndex }) =>
      several ? { line, reason, raw, file, file_index: fileIndex } : { line, reason, raw }
    ),
    ...(several
      ? {
        files: response.files.map(({ name, rows, badRows, departments }) => ({
          name,
          rows,
          bad_rows: badRows,
          departments,
        })),
      }
      : {}),
  };
}

/** Whether the file at `path` starts with gzip's magic bytes. */
async function isGzipFile(path: string): Promise<boolean> {
  using file = await Deno.open(path, { read: true });
  return await startsWithGzipMagic(file);
}

/** Whether the next two bytes of `file` are gzip's magic bytes (it reads them). */
async function startsWithGzipMagic(file: Deno.FsFile): Promise<boolean> {
  const head = new Uint8Array(2);
  let headBytes = 0;
  while (headBytes < 2) {
    const read = await file.read(head.subarray(headBytes));
    if (read === null) break;
    headBytes += read;
  }
  return headBytes === 2 && head[0] === 0x1f && head[1] === 0x8b;
}

function describe(
  error: unknown,
  input: string,
  args: UploadArgs,
  tokenSent: boolean,
  opened: boolean,
): string {
  if (error instanceof AppError) {
    if (error.code === Status.UNAVAILABLE && opened) {
      return `Lost the connection to the service at ${args.address}: ${error.message} (${
        statusName(error.code)
      })`;
    }
    return describeCallError(error, args.address, tokenSent);
  }
  if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
    return cannotRead(input, error);
  }
  return (error as Error)?.message ?? String(error);
}

/**
 * One status line on stderr: "Connecting…" until the call is open, then a progress bar (bytes,
 * MB/s, time left, redrawn at most ten times a second; with several files, the file being sent
 * and its position), then "Computing totals…" once the last byte is sent.
 */
class ProgressBar {
  #started = performance.now();
  #lastDraw = 0;
  #line: StatusLine;

  #file = 0;

  constructor(
    readonly total: number,
    write: (text: string) => void,
    readonly address: string,
    /** The names of the files, when there are several. */
    readonly files: readonly string[] = [],
  ) {
    this.#line = new StatusLine(write);
  }

  /** Shown until the call is open. */
  connecting(): void {
    this.#line.draw(`Connecting to ${this.address}…`);
  }

  /** Shows `bytes` of all files read, while file `file` is being sent. */
  update(bytes: number, file = this.#file): void {
    const now = performance.now();
    if (this.#lastDraw === 0) this.#started = now;
    // A new file is drawn at once, so that even a small one shows.
    const fileChanged = file !== this.#file;
    this.#file = file;
    if (now - this.#lastDraw < 100 && bytes < this.total && !fileChanged) return;
    this.#lastDraw = now;
    this.#line.draw(this.#bar(bytes, now));
  }

  /** Every byte is sent (the last from file `file`): the service is finishing the totals. */
  computing(bytes: number, file = this.#file): void {
    this.#file = file;
    this.#line.draw(`${this.#bar(bytes, performance.now())}  Computing totals…`);
  }

  /** Leaves the finished bar on its own line. */
  done(): void {
    this.#line.draw(this.#bar(this.total, performance.now()));
    this.#line.end();
  }

  /** Ends the line so an error message starts on a fresh one. */
  abandon(): void {
    this.#line.abandon();
  }

  #bar(bytes: number, now: number): string {
    const seconds = (now - this.#started) / 1000;
    const rate = seconds > 0 ? bytes / seconds : 0;
    const fraction = this.total > 0 ? Math.min(bytes / this.total, 1) : 1;
    const eta = rate > 0 ? (this.total - bytes) / rate : Infinity;
    const file = this.files.length > 1
      ? `  ${this.files[this.#file]} (${this.#file + 1}/${this.files.length})`
      : "";
    return progressBar(fraction) +
      `  ${megabytes(bytes)} / ${megabytes(this.total)}  ${(rate / 1e6).toFixed(1)} MB/s` +
      `  ETA ${formatDuration(eta)}${file}`;
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const whole = Math.ceil(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args, processIo, { SALES_API_TOKEN: Deno.env.get("SALES_API_TOKEN") }));
}
