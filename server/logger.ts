/**
 * The server's one logger. `main.ts` creates it once and passes it to every part that reports
 * something (the gRPC server, the web handlers, storage, the dev reloader); tests pass a recording
 * one. Nothing else in `server/` writes to the console, except `cli/`, which talks to its user.
 *
 * @example
 * ```ts
 * import { consoleLogger } from "./logger.ts";
 * consoleLogger.info("[gRPC] Listening on 127.0.0.1:50051");
 * ```
 *
 * @module
 */

/** Where the server's operational messages go. */
export interface Logger {
  /** Something worth knowing that needs no action: a listener started, a sweep deleted files. */
  info(message: string, ...details: unknown[]): void;
  /** Something that works, but not as configured or expected. */
  warn(message: string, ...details: unknown[]): void;
  /** A failure an operator should look at, with its cause in `details`. */
  error(message: string, ...details: unknown[]): void;
}

/** Options of {@linkcode createConsoleLogger}. */
export interface ConsoleLoggerOptions {
  /** Where `info` lines go instead of `console.log`. @default {console.log} */
  info?: (line: string) => void;
}

/** A logger that writes to the console: `info` to stdout, `warn` and `error` to stderr. */
export function createConsoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const info = options.info;
  return {
    info: info === undefined
      ? (message, ...details) => console.log(message, ...details)
      : (message, ...details) => info([message, ...details.map(String)].join(" ")),
    warn: (message, ...details) => console.warn(message, ...details),
    error: (message, ...details) => console.error(message, ...details),
  };
}

/** The console logger, for callers that were given none. */
export const consoleLogger: Logger = createConsoleLogger();
