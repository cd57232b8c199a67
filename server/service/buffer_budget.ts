/**
 * The memory budget for request messages being received (`MAX_BUFFERED_BYTES`). A transport
 * reserves a message's declared length as soon as its length prefix arrives, before it reads the
 * rest, and releases it once the message has been handed to the service. A reservation that does
 * not fit waits, first come first served, for a short while; then the call is refused with
 * `RESOURCE_EXHAUSTED` and a retry hint. Both transports share one budget, so the bound holds for
 * the process.
 *
 * @example
 * ```ts
 * import { BufferBudget } from "./buffer_budget.ts";
 *
 * const budget = new BufferBudget({ maxBytes: 100, waitMs: 10 });
 * const first = await budget.reserve(80);
 * const refused = await budget.reserve(30).catch((error) => error);
 * if (refused.code !== 8) throw new Error("expected RESOURCE_EXHAUSTED");
 * first.release();
 * (await budget.reserve(30)).release();
 * ```
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";

/** Options of {@linkcode BufferBudget}. */
export interface BufferBudgetOptions {
  /** Bytes that may be reserved at once. */
  maxBytes: number;
  /** How long a reservation waits for room before it is refused, in milliseconds. @default {3000} */
  waitMs?: number;
  /** Retry hint sent with a refusal, in milliseconds. @default {2000} */
  retryAfterMs?: number;
  /**
   * Calls that may wait for room at once; one more is refused at once. A waiting call's stream is
   * paused, but what its client sent within the HTTP/2 window (4 MiB on the gRPC port) is already
   * held, outside the budget: this caps that memory at `maxWaiters` windows.
   * @default {64}
   */
  maxWaiters?: number;
  /**
   * Slowest a reserved message may arrive, in bytes per second, after {@linkcode receiveGraceMs}:
   * a message holds its room only while it keeps coming, so a client that declares a large message
   * and then trickles it cannot sit on the budget.
   * @default {262144}
   */
  minReceiveBytesPerSec?: number;
  /** Time every message gets on top of its size at the slowest rate, in milliseconds. @default {30000} */
  receiveGraceMs?: number;
}

/** Bytes held against the budget until {@linkcode Reservation.release} (idempotent). */
export interface Reservation {
  readonly bytes: number;
  release(): void;
}

interface Waiter {
  bytes: number;
  grant: () => void;
}

/** Counts bytes of request messages held in memory against one limit. */
export class BufferBudget {
  readonly maxBytes: number;
  readonly #waitMs: number;
  readonly #retryAfterMs: number;
  readonly #maxWaiters: number;
  readonly #minReceiveBytesPerSec: number;
  readonly #receiveGraceMs: number;
  #reserved = 0;
  readonly #waiters: Waiter[] = [];

  constructor(options: BufferBudgetOptions) {
    this.maxBytes = options.maxBytes;
    this.#waitMs = options.waitMs ?? 3000;
    this.#retryAfterMs = options.retryAfterMs ?? 2000;
    this.#maxWaiters = options.maxWaiters ?? 64;
    this.#minReceiveBytesPerSec = options.minReceiveBytesPerSec ?? 256 * 1024;
    this.#receiveGraceMs = options.receiveGraceMs ?? 30_000;
  }

  /**
   * Starts the clock for a reserved message of `bytes` that is still arriving: unless the returned
   * function is called (the last byte came) within the grace time plus `bytes` at the slowest
   * rate, `onTimeout` gets the `RESOURCE_EXHAUSTED` to end the call with. The transports call it
   * when a reservation is granted and release the reservation when they end the call.
   */
  receiveClock(bytes: number, onTimeout: (error: AppError) => void): () => void {
    const limitMs = this.#receiveGraceMs + (bytes / this.#minReceiveBytesPerSec) * 1000;
    const timer = setTimeout(() => {
      const seconds = Math.round(limitMs / 100) / 10;
      onTimeout(
        new AppError(
          Status.RESOURCE_EXHAUSTED,
          `Request message of ${bytes} bytes did not arrive within ${seconds} s: a message holds ` +
            `room in MAX_BUFFERED_BYTES only while it arrives at ${this.#minReceiveBytesPerSec} ` +
            `bytes/s or faster`,
        ),
      );
    }, limitMs);
    return () => clearTimeout(timer);
  }

  /** Bytes reserved now. */
  get reserved(): number {
    return this.#reserved;
  }

  /** Calls waiting for room now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Reserves `bytes`, waiting up to the configured time for room. Rejects with
   * `RESOURCE_EXHAUSTED` (retry hint included) when none comes, or with `signal`'s reason.
   */
  reserve(bytes: number, signal?: AbortSignal): Promise<Reservation> {
    if (bytes > this.maxBytes) {
      return Promise.reject(this.#exhausted(bytes));
    }
    if (this.#waiters.length === 0 && this.#reserved + bytes <= this.maxBytes) {
      return Promise.resolve(this.#grant(bytes));
    }
    if (this.#waiters.length >= this.#maxWaiters) {
      return Promise.reject(this.#exhausted(bytes));
    }
    return new Promise<Reservation>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        grant: () => {
          cleanup();
          resolve(this.#grant(bytes));
        },
      };
      const giveUp = (error: unknown) => {
        cleanup();
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        // A waiter leaving the head of the queue may unblock smaller ones behind it.
        this.#wakeWaiters();
        reject(error);
      };
      const timer = setTimeout(() => giveUp(this.#exhausted(bytes)), this.#waitMs);
      const onAbort = () => giveUp(signal!.reason);
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      if (signal?.aborted) return giveUp(signal.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Reserves `bytes` now if they fit without waiting; undefined otherwise. */
  tryReserve(bytes: number): Reservation | undefined {
    if (this.#waiters.length > 0 || this.#reserved + bytes > this.maxBytes) return undefined;
    return this.#grant(bytes);
  }

  #grant(bytes: number): Reservation {
    this.#reserved += bytes;
    let held = true;
    return {
      bytes,
      release: () => {
        if (!held) return;
        held = false;
        this.#reserved -= bytes;
        this.#wakeWaiters();
      },
    };
  }

  #wakeWaiters(): void {
    while (this.#waiters.length > 0 && this.#reserved + this.#waiters[0].bytes <= this.maxBytes) {
      this.#waiters.shift()!.grant();
    }
  }

  #exhausted(bytes: number): AppError {
    return new AppError(
      Status.RESOURCE_EXHAUSTED,
      `Server busy: a ${bytes}-byte message does not fit in MAX_BUFFERED_BYTES (${this.maxBytes} bytes of messages being received at once): retry in a few seconds`,
      { retryAfterMs: this.#retryAfterMs },
    );
  }
}
