/**
 * A {@linkcode Logger} for tests: it keeps every entry instead of printing it.
 *
 * @module
 */

import type { Logger } from "./logger.ts";

/** One logged entry. */
export interface LogEntry {
  level: "info" | "warn" | "error";
  message: string;
  details: unknown[];
}

/** A logger that records its entries in `entries`, oldest first. */
export class RecordingLogger implements Logger {
  /** Everything logged so far. */
  readonly entries: LogEntry[] = [];

  info(message: string, ...details: unknown[]): void {
    this.entries.push({ level: "info", message, details });
  }

  warn(message: string, ...details: unknown[]): void {
    this.entries.push({ level: "warn", message, details });
  }

  error(message: string, ...details: unknown[]): void {
    this.entries.push({ level: "error", message, details });
  }
}
