/**
 * How tests wait: {@linkcode eventually} polls a condition until it holds or a deadline passes, and
 * {@linkcode consistently} checks that one keeps holding. A fixed sleep is either too short on a
 * busy machine (a flaky test) or too long everywhere (a slow suite).
 *
 * @example
 * ```ts
 * import { eventually } from "./_test_eventually.ts";
 *
 * let port: number | undefined;
 * queueMicrotask(() => port = 8080);
 * const answered = await eventually(() => port, "the server to listen");
 * if (answered !== 8080) throw new Error(`port ${answered}`);
 * ```
 *
 * @module
 */

/** Options of {@linkcode eventually}. */
export interface EventuallyOptions {
  /** How long to keep polling before failing. @default {5000} */
  timeoutMs?: number;
  /** The pause between two polls. @default {10} */
  intervalMs?: number;
  /**
   * Count an exception thrown by the probe as "not yet" (a server still starting) instead of
   * failing at once; the last one becomes the timeout error's cause. @default {false}
   */
  retryErrors?: boolean;
}

/**
 * Polls `probe` until it returns something other than `undefined` or `false`, and returns that;
 * throws naming `what` once `timeoutMs` has passed. A number is taken as `timeoutMs`.
 */
export async function eventually<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  options: number | EventuallyOptions = {},
): Promise<T> {
  const { timeoutMs = 5_000, intervalMs = 10, retryErrors = false } = typeof options === "number"
    ? { timeoutMs: options }
    : options;
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      if (!retryErrors) throw error;
      lastError = error;
    }
    if (performance.now() >= deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Checks `check` every `intervalMs` for `durationMs` and throws naming `what` as soon as it fails:
 * how a test shows that something does not happen (a paused stream stays paused) when no event
 * marks the moment it would have happened. The one place a test waits for a fixed time.
 */
export async function consistently(
  check: () => boolean | Promise<boolean>,
  what: string,
  durationMs: number,
  intervalMs = 10,
): Promise<void> {
  const started = performance.now();
  for (;;) {
    if (!(await check())) {
      const after = Math.round(performance.now() - started);
      throw new Error(`Expected ${what} for ${durationMs} ms, but it stopped after ${after} ms`);
    }
    if (performance.now() - started >= durationMs) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
