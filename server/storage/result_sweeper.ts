/**
 * The periodic deletion of old results (`RESULT_TTL_HOURS`): {@linkcode startResultSweeper} runs
 * {@linkcode ResultStore.sweep} at start and then on an unref'd timer, so it never keeps the
 * process alive, and never runs two sweeps at once. Every replica sharing `STORAGE_DIR` may run
 * one: a sweep deletes only finished results, never a temp file, and skips a result another
 * replica's sweep deleted first (each logs only its own deletions).
 *
 * @example
 * ```ts
 * import { ResultStore } from "./result_store.ts";
 * import { startResultSweeper } from "./result_sweeper.ts";
 * const dir = await Deno.makeTempDir();
 * const store = await ResultStore.open(dir);
 * const resultId = await store.save("Department Name,Total Number of Sales\n");
 * const sweeper = startResultSweeper(store, { maxAgeMs: 60_000 });
 * await sweeper.sweepNow();
 * await store.read(resultId); // Still there: it is seconds old.
 * await sweeper.stop();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { consoleLogger, type Logger } from "../logger.ts";
import type { ResultStore } from "./result_store.ts";

/** Options of {@linkcode startResultSweeper}. */
export interface ResultSweeperOptions {
  /** Results older than this many milliseconds are deleted. */
  maxAgeMs: number;
  /**
   * Milliseconds between sweeps; a result lives at most `maxAgeMs` plus this.
   * @default {a quarter of maxAgeMs, from 1 second to 1 hour}
   */
  intervalMs?: number;
  /** Millisecond wall clock, for tests. @default {Date.now} */
  now?: () => number;
  /**
   * Where each sweep that deleted something (info) and each failure (error) is reported.
   * @default {consoleLogger}
   */
  logger?: Logger;
}

/** A running sweeper. */
export interface ResultSweeper {
  /** Sweeps now (or waits for the sweep in progress); resolves with how many results it deleted. */
  sweepNow(): Promise<number>;
  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void>;
}

/** Starts sweeping `store`: once now, then every `intervalMs`. */
export function startResultSweeper(
  store: ResultStore,
  options: ResultSweeperOptions,
): ResultSweeper {
  const { maxAgeMs } = options;
  const now = options.now ?? Date.now;
  const logger = options.logger ?? consoleLogger;
  const intervalMs = options.intervalMs ?? Math.min(Math.max(maxAgeMs / 4, 1000), 3_600_000);
  const hours = `${Math.round(maxAgeMs / 36_000) / 100} h`;
  let running: Promise<number> | undefined;

  const sweepNow = (): Promise<number> => {
    running ??= store.sweep(maxAgeMs, now()).then(
      (deleted) => {
        if (deleted > 0) logger.info(`[storage] Deleted ${deleted} result(s) older than ${hours}`);
        return deleted;
      },
      (error) => {
        // A failed sweep is retried at the next tick; the service keeps serving.
        logger.error(`[storage] Cannot delete old results: ${(error as Error)?.message ?? error}`);
        return 0;
      },
    ).finally(() => running = undefined);
    return running;
  };

  const timer = setInterval(sweepNow, intervalMs);
  Deno.unrefTimer(timer);
  sweepNow();
  return {
    sweepNow,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
