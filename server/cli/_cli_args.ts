/**
 * How every `deno task` command starts: its command line parsed by node:util's `parseArgs` with
 * the errors worded for the user, `--help` answered on stdout, a usage error answered on stderr
 * with exit code 2, and, for the commands that call the service, the access token read from the
 * environment.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/**
 * `parseArgs` with positionals allowed; its errors (`Unknown option '--x'`) are thrown again as
 * an Error meant for the user: the same words, a blank line, then `usage`.
 */
export function parseCommandLine<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true });
  } catch (error) {
    throw new Error(`${(error as Error).message}\n\n${usage}`);
  }
}

/**
 * `value` when it is a `--addr` (`host:port`, the host possibly a bracketed IPv6 literal); else
 * throws an Error meant for the user, with `usage`.
 */
export function parseAddress(value: string, usage: string): string {
  if (!/^(\[[^\]]+\]|[^:\s]+):\d+$/.test(value)) {
    throw new Error(`--addr must be host:port, got ${JSON.stringify(value)}\n\n${usage}`);
  }
  return value;
}

/** Where a command prints whole lines; each call is one line, without its line break. */
export interface LineOutput {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

/** The environment variables a command that calls the service reads. */
export interface ServiceEnv {
  /** Sent as `authorization: Bearer <token>` when set and not empty. */
  SALES_API_TOKEN?: string;
}

/** Options of {@linkcode startCommand}. */
export interface StartOptions<T> {
  /** Parses the arguments: `"help"` for `--help`; throws an Error meant for the user. */
  parse: (args: string[]) => T | "help";
  /** Printed for `--help`. */
  usage: string;
  /** Where the help and the usage errors go. */
  out: LineOutput;
  /** Given by the commands that call the service, to read `SALES_API_TOKEN`. */
  env?: ServiceEnv;
}

/** What the start decided: go on with these arguments and token, or end with this exit code. */
export type CommandStart<T> = { args: T; token: string | undefined } | { exitCode: number };

/**
 * The start of every command's `main`: a usage error (or an access token that could not travel
 * in a header) is printed on stderr and ends the command with exit code 2; `--help` prints the
 * usage on stdout and ends it with 0.
 */
export function startCommand<T>(args: string[], options: StartOptions<T>): CommandStart<T> {
  let parsed: T | "help";
  try {
    parsed = options.parse(args);
  } catch (error) {
    options.out.stderr((error as Error).message);
    return { exitCode: 2 };
  }
  if (parsed === "help") {
    options.out.stdout(options.usage);
    return { exitCode: 0 };
  }
  const token = options.env?.SALES_API_TOKEN?.trim() || undefined;
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    // It travels in a header: grpc-js would refuse it with a less helpful message.
    options.out.stderr("error: SALES_API_TOKEN must contain only visible ASCII characters");
    return { exitCode: 2 };
  }
  return { args: parsed, token };
}
