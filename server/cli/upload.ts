/**
 * `deno task upload <file.csv> [--addr host:port] [--out result.csv] [--no-compress]`: streams a
 * CSV to the service with `UploadCSVStream`, gzip-compressed on the way unless `--no-compress` is
 * given or the file already is gzip, shows progress on stderr when it is a terminal, prints the
 * response as one JSON line on stdout and, with `--out`, downloads the result CSV.
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
import { AppError, Status } from "../errors.ts";
import { SalesClient } from "../grpc/sales_client.ts";
import type { UploadResponse } from "../service/types.ts";

const USAGE =
  "Usage: deno task upload <file.csv> [--addr host:port] [--out result.csv] [--no-compress]\n" +
  "The file is sent gzip-compressed unless --no-compress is given or it already is gzip.\n" +
  "Set SALES_API_TOKEN in the environment when the server requires a token.";
/** Bytes per streamed message; 256 KiB measured fastest with the server's HTTP/2 settings. */
export const CHUNK_BYTES = 256 * 1024;

/** Parsed command line. */
export interface UploadArgs {
  input: string;
  /** Server address, `host:port`. @default {"localhost:50051"} */
  address: string;
  /** Where to write the result CSV, if anywhere. */
  output: string | undefined;
  /** Whether to gzip the file on its way (`--no-compress` turns it off). @default {true} */
  compress: boolean;
}

/**
 * zlib level for uploads. On sales CSV, level 2 deflates at about 170 MB/s on one core to 3.3x
 * smaller; level 1 is 230 MB/s but only 2.4x, level 6 3.7x at 90 MB/s. Level 2 beats both from a
 * 100 Mbit/s link up to about a gigabit.
 */
export const GZIP_LEVEL = 2;

/** Parses the arguments, or throws an Error whose message is meant for the user. */
export function parseUploadArgs(args: string[]): UploadArgs {
  let input: string | undefined;
  let address = "localhost:50051";
  let output: string | undefined;
  let compress = true;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [name, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    if (name === "--addr" || name === "--out") {
      const value = inline ?? args[++i];
      if (!value) throw new Error(`${name} needs a value\n${USAGE}`);
      if (name === "--addr") address = value;
      else output = value;
    } else if (arg === "--no-compress") {
      compress = false;
    } else if (arg === "--help" || arg === "-h") {
      throw new Error(USAGE);
    } else if (arg.startsWith("-")) {
      throw new Error(`Unknown option ${arg}\n${USAGE}`);
    } else if (input === undefined) {
      input = arg;
    } else {
      throw new Error(`Unexpected argument ${arg}\n${USAGE}`);
    }
  }
  if (!input) throw new Error(`Missing the CSV file to upload\n${USAGE}`);
  if (!/^(\[[^\]]+\]|[^:\s]+):\d+$/.test(address)) {
    throw new Error(`--addr must be host:port, got ${JSON.stringify(address)}\n${USAGE}`);
  }
  return { input, address, output, compress };
}

/** Where the command writes; tests pass their own. */
export interface UploadIo {
  stdout: (line: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal, so a progress bar makes sense. */
  stderrIsTerminal: boolean;
}

const defaultIo: UploadIo = {
  stdout: (line) => console.log(line),
  stderr: (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)),
  stderrIsTerminal: Deno.stderr.isTerminal(),
};

/** The environment variables the command reads. */
export interface UploadEnv {
  /** Sent as `authorization: Bearer <token>` when set and not empty. */
  SALES_API_TOKEN?: string;
}

/** Runs the command; returns the process exit code. */
export async function main(
  args: string[],
  io: UploadIo = defaultIo,
  env: UploadEnv = {},
): Promise<number> {
  let parsed: UploadArgs;
  try {
    parsed = parseUploadArgs(args);
  } catch (error) {
    io.stderr(`${(error as Error).message}\n`);
    return 2;
  }

  const token = env.SALES_API_TOKEN?.trim() || undefined;
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    // It travels in a header: grpc-js would refuse it with a less helpful message.
    io.stderr("error: SALES_API_TOKEN must contain only visible ASCII characters\n");
    return 2;
  }

  let file: Deno.FsFile;
  let size: number;
  try {
    file = await Deno.open(parsed.input, { read: true });
    const info = await file.stat();
    if (!info.isFile) {
      file.close();
      throw new Error("not a regular file");
    }
    size = info.size;
  } catch (error) {
    io.stderr(`error: Cannot read ${parsed.input}: ${(error as Error).message}\n`);
    return 1;
  }

  const client = new SalesClient(parsed.address, {
    metadata: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  const progress = io.stderrIsTerminal ? new ProgressBar(size, io.stderr) : undefined;
  try {
    const source = await uploadChunks(file, parsed.compress);
    // The bar follows the file read, whatever goes on the wire.
    const response = await client.uploadStream(source.chunks, basename(parsed.input), {
      onProgress: () => progress?.update(source.fileBytesRead()),
    });
    progress?.done();
    if (parsed.output !== undefined) {
      const data = await client.downloadResult(response.resultId);
      await Deno.writeFile(parsed.output, data);
    }
    io.stdout(JSON.stringify(toJson(response, parsed.output)));
    return 0;
  } catch (error) {
    progress?.abandon();
    io.stderr(`error: ${describe(error, parsed, token !== undefined)}\n`);
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
  const head = new Uint8Array(2);
  let headBytes = 0;
  while (headBytes < 2) {
    const read = await file.read(head.subarray(headBytes));
    if (read === null) break;
    headBytes += read;
  }
  await file.seek(0, Deno.SeekMode.Start);
  const gzip = headBytes === 2 && head[0] === 0x1f && head[1] === 0x8b;
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

/** The response as the aggregate command prints its result: snake_case, one line. */
function toJson(response: UploadResponse, output: string | undefined): Record<string, unknown> {
  return {
    result_id: response.resultId,
    download_url: response.downloadUrl,
    rows: response.rows,
    bad_rows: response.badRows,
    departments: response.departments,
    elapsed_sec: response.elapsedSec,
    ...(output === undefined ? {} : { output }),
    bad_row_samples: response.badRowSamples,
  };
}

function describe(error: unknown, args: UploadArgs, tokenSent: boolean): string {
  if (error instanceof AppError) {
    const status = Object.entries(Status).find(([, code]) => code === error.code)?.[0];
    if (error.code === Status.UNAVAILABLE) {
      return `Cannot reach the sales service at ${args.address}: ${error.message} (${status})`;
    }
    if (error.code === Status.UNAUTHENTICATED) {
      return tokenSent
        ? `The sales service at ${args.address} refused SALES_API_TOKEN: ${error.message}; check that it matches the server's token (${status})`
        : `The sales service at ${args.address} requires an access token: set SALES_API_TOKEN in the environment to the server's token (${status})`;
    }
    return `${error.message} (${status})`;
  }
  return (error as Error)?.message ?? String(error);
}

/** A one-line progress bar: bytes, MB/s and time left, redrawn at most ten times a second. */
class ProgressBar {
  readonly #started = performance.now();
  #lastDraw = 0;

  constructor(readonly total: number, readonly write: (text: string) => void) {}

  update(bytes: number): void {
    const now = performance.now();
    if (now - this.#lastDraw < 100 && bytes < this.total) return;
    this.#lastDraw = now;
    const seconds = (now - this.#started) / 1000;
    const rate = seconds > 0 ? bytes / seconds : 0;
    const fraction = this.total > 0 ? Math.min(bytes / this.total, 1) : 1;
    const width = 30;
    const filled = Math.round(fraction * width);
    const eta = rate > 0 ? (this.total - bytes) / rate : Infinity;
    this.write(
      `\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${
        (fraction * 100).toFixed(0).padStart(3)
      }%` +
        `  ${megabytes(bytes)} / ${megabytes(this.total)}  ${(rate / 1e6).toFixed(1)} MB/s` +
        `  ETA ${formatDuration(eta)}\x1b[K`,
    );
  }

  /** Leaves the finished bar on its own line. */
  done(): void {
    this.update(this.total);
    this.write("\n");
  }

  /** Ends the line so an error message starts on a fresh one. */
  abandon(): void {
    if (this.#lastDraw > 0) this.write("\n");
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
  Deno.exit(await main(Deno.args, defaultIo, { SALES_API_TOKEN: Deno.env.get("SALES_API_TOKEN") }));
}
