/**
 * `deno task upload <file.csv> [--addr host:port] [--out result.csv]`: streams a CSV to the
 * service with `UploadCSVStream`, shows progress on stderr when it is a terminal, prints the
 * response as one JSON line on stdout and, with `--out`, downloads the result CSV.
 *
 * When the server requires a token (`SALES_API_TOKEN` on the server), set the same
 * `SALES_API_TOKEN` in the environment: it is sent as `authorization: Bearer <token>` metadata.
 *
 * @module
 */

import { basename } from "node:path";
import { AppError, Status } from "../errors.ts";
import { SalesClient } from "../grpc/sales_client.ts";
import type { UploadResponse } from "../service/types.ts";

const USAGE = "Usage: deno task upload <file.csv> [--addr host:port] [--out result.csv]\n" +
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
}

/** Parses the arguments, or throws an Error whose message is meant for the user. */
export function parseUploadArgs(args: string[]): UploadArgs {
  let input: string | undefined;
  let address = "localhost:50051";
  let output: string | undefined;
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
  return { input, address, output };
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
    const response = await client.uploadStream(readFileChunks(file), basename(parsed.input), {
      onProgress: (bytes) => progress?.update(bytes),
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
