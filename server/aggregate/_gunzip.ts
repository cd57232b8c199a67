/**
 * Inflates gzip streams on a worker thread (`_gunzip_worker.ts`, `node:zlib`), so that inflating
 * overlaps the parsing of what was inflated before. Gzip is checked as `gzip -t` does: each
 * member's CRC-32 and length, concatenated members read, and nothing but members to the end.
 *
 * Bytes cross threads in SharedArrayBuffers, with small messages saying which slot holds what.
 * One worker serves every stream of the process: it starts with the first (tens of milliseconds)
 * and stops {@linkcode IDLE_WORKER_MS} after the last one closed, so a process that is otherwise
 * done exits that much later. It is a web `Worker`:
 * Deno's `node:worker_threads` takes hundreds of milliseconds of this thread to start one, and
 * its messages cost more than the pieces they announce.
 * Memory stays flat whatever the compression ratio: each stream has two fixed rings of slots, one
 * for compressed bytes and one for inflated pieces; the inflater pauses while its parser has not
 * handed back an output slot, and writers wait (see {@linkcode Gunzip.drained}) while their bytes
 * do not fit in the input ring.
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";

// Each handover between the threads costs a message each way and some wake-up latency: pieces of
// 128 KiB left both threads waiting half the time; 512 KiB ones keep them busy. A gzip stream holds
// 8 MiB of slots while it is open.

/** Inflated bytes per piece handed to the parser. */
export const GUNZIP_PIECE_BYTES = 512 * 1024;
/** Inflated pieces a stream's inflater may run ahead of its parser. */
export const GUNZIP_PIECES_AHEAD = 8;
/** Compressed bytes per input slot. */
export const GUNZIP_INPUT_SLOT_BYTES = 1024 * 1024;
/** Input slots per stream: compressed bytes queued for the worker. */
const GUNZIP_INPUT_SLOTS = 4;

const WORKER = new URL("./_gunzip_worker.ts", import.meta.url);

/** A message to the worker about stream `id`. */
export interface WorkerRequest {
  id: number;
  /**
   * open: with the stream's `input` and `output` rings (whole SharedArrayBuffers: a typed array
   * would be copied, slowly); data: input `slot` holds `length` bytes; credit: output `slot` is
   * free again.
   */
  type: "open" | "data" | "credit" | "end" | "close";
  input?: SharedArrayBuffer;
  output?: SharedArrayBuffer;
  slot?: number;
  length?: number;
}

/** A message from the worker about stream `id`. */
interface WorkerReply {
  id: number;
  type: "inflated" | "consumed" | "end" | "error";
  /** inflated: the output slot holding the piece, and its length; consumed: the input slot. */
  slot?: number;
  length?: number;
  consumed?: number;
  code?: string;
  message?: string;
}

type IdleTimer = ReturnType<typeof setTimeout>;

/** How long the worker outlives its last stream, for the next one to come. */
const IDLE_WORKER_MS = 2000;

/** The shared worker, the streams it serves, and the timer that stops it once idle. */
let shared:
  | { worker: Worker; streams: Map<number, Gunzip>; idleTimer: IdleTimer | undefined }
  | undefined;
let nextId = 1;

function connect(stream: Gunzip): { worker: Worker; id: number } {
  if (shared === undefined) {
    const worker = new Worker(WORKER, { type: "module" });
    const streams = new Map<number, Gunzip>();
    const current = { worker, streams, idleTimer: undefined as IdleTimer | undefined };
    worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      streams.get(event.data.id)?.receive(event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      if (shared === current) shared = undefined;
      worker.terminate();
      const cause = event.error ?? event.message;
      const error = new AppError(Status.INTERNAL, "Internal server error", {
        cause,
      });
      for (const stream of streams.values()) stream.fail(error);
    };
    shared = current;
  }
  clearTimeout(shared.idleTimer);
  shared.idleTimer = undefined;
  const id = nextId++;
  shared.streams.set(id, stream);
  const request: WorkerRequest = {
    id,
    type: "open",
    input: stream.input,
    output: stream.output,
  };
  shared.worker.postMessage(request);
  return { worker: shared.worker, id };
}

function disconnect(worker: Worker, id: number): void {
  const current = shared;
  if (current?.worker !== worker || !current.streams.delete(id)) return;
  const request: WorkerRequest = { id, type: "close" };
  worker.postMessage(request);
  if (current.streams.size > 0) return;
  // A web worker keeps the process alive and cannot be unref'd: it stops once idle for a while.
  // (Starting one costs tens of milliseconds, and a second or more where `deno test` type-checks
  // it.) The timer itself does not keep the process alive.
  const idleTimer = setTimeout(() => {
    if (shared !== current || current.streams.size > 0) return;
    worker.terminate();
    shared = undefined;
  }, IDLE_WORKER_MS);
  Deno.unrefTimer(idleTimer);
  current.idleTimer = idleTimer;
}

/** One gzip stream being inflated; `onPiece` gets the inflated bytes in order. */
export class Gunzip {
  readonly #worker: Worker;
  readonly #id: number;
  readonly #onPiece: (piece: Uint8Array) => void;
  /** Input slots the worker inflates from. */
  readonly input = new SharedArrayBuffer(
    GUNZIP_INPUT_SLOTS * GUNZIP_INPUT_SLOT_BYTES,
  );
  /** Output slots the worker fills, {@linkcode GUNZIP_PIECE_BYTES} each. */
  readonly output = new SharedArrayBuffer(
    GUNZIP_PIECES_AHEAD * GUNZIP_PIECE_BYTES,
  );
  #freeInput = Array.from({ length: GUNZIP_INPUT_SLOTS }, (_, slot) => slot);
  /** Bytes written that wait for a free input slot (copies), and how far the first was sent. */
  #pending: Uint8Array[] = [];
  #pendingSent = 0;
  #written = 0;
  #failure: unknown;
  #consumed: number | undefined;
  /** Wake whoever waits in drained() or end(). */
  #waiters: (() => void)[] = [];

  /**
   * Opens a stream. `onPiece` runs on this thread for each inflated piece; if it throws, the
   * stream fails with that error.
   */
  constructor(onPiece: (piece: Uint8Array) => void) {
    this.#onPiece = onPiece;
    ({ worker: this.#worker, id: this.#id } = connect(this));
  }

  /** Queues compressed bytes (copied: the caller may reuse its buffer at once). */
  write(bytes: Uint8Array): void {
    if (this.#failure !== undefined) throw this.#failure;
    this.#written += bytes.length;
    const sent = this.#pending.length === 0 ? this.#fill(bytes, 0) : 0;
    // A copy (a Buffer's slice() would share the bytes).
    if (sent < bytes.length) {
      this.#pending.push(new Uint8Array(bytes.subarray(sent)));
    }
  }

  /** Resolves once every byte written is in the input ring; rejects on failure. */
  async drained(): Promise<void> {
    while (this.#failure === undefined && this.#pending.length > 0) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Ends the input: resolves once every piece was handed over and the last member's trailer
   * checked. Truncated data, or bytes after the last member, reject with INVALID_ARGUMENT.
   */
  async end(): Promise<void> {
    await this.drained();
    this.#send({ id: this.#id, type: "end" });
    while (this.#failure === undefined && this.#consumed === undefined) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    this.close();
    if (this.#failure !== undefined) throw this.#failure;
    const extra = this.#written - this.#consumed!;
    if (extra > 0) {
      throw new AppError(
        Status.INVALID_ARGUMENT,
        `The gzip data is corrupt: ${extra} bytes follow the last member`,
      );
    }
  }

  /** Fails the stream with `error` (unless it failed already) and drops it from the worker. */
  fail(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.close();
    this.#notify();
  }

  /** Drops the stream from the worker; idempotent. */
  close(): void {
    disconnect(this.#worker, this.#id);
  }

  /** Handles a message of the worker about this stream. */
  receive(message: WorkerReply): void {
    if (this.#failure !== undefined) return;
    switch (message.type) {
      case "inflated":
        try {
          this.#onPiece(
            new Uint8Array(
              this.output,
              message.slot! * GUNZIP_PIECE_BYTES,
              message.length,
            ),
          );
        } catch (error) {
          this.fail(error);
          return;
        }
        this.#send({ id: this.#id, type: "credit", slot: message.slot });
        return;
      case "consumed":
        this.#freeInput.push(message.slot!);
        this.#sendPending();
        break;
      case "end":
        this.#consumed = message.consumed!;
        break;
      case "error":
        this.fail(gzipError(message.code!, message.message!));
        return;
    }
    this.#notify();
  }

  /** Copies `bytes` from `at` into free input slots and sends them; returns how far it got. */
  #fill(bytes: Uint8Array, at: number): number {
    const ring = new Uint8Array(this.input);
    while (at < bytes.length && this.#freeInput.length > 0) {
      const slot = this.#freeInput.pop()!;
      const length = Math.min(GUNZIP_INPUT_SLOT_BYTES, bytes.length - at);
      ring.set(bytes.subarray(at, at + length), slot * GUNZIP_INPUT_SLOT_BYTES);
      this.#send({ id: this.#id, type: "data", slot, length });
      at += length;
    }
    return at;
  }

  #sendPending(): void {
    while (this.#pending.length > 0 && this.#freeInput.length > 0) {
      const first = this.#pending[0];
      this.#pendingSent = this.#fill(first, this.#pendingSent);
      if (this.#pendingSent < first.length) return;
      this.#pending.shift();
      this.#pendingSent = 0;
    }
  }

  #send(request: WorkerRequest): void {
    this.#worker.postMessage(request);
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** zlib's error as the user sees it: input that ends early is truncated, anything else corrupt. */
function gzipError(code: string, message: string): AppError {
  if (code === "Z_BUF_ERROR") {
    return new AppError(
      Status.INVALID_ARGUMENT,
      "The gzip data is truncated: it ends mid-stream",
    );
  }
  return new AppError(
    Status.INVALID_ARGUMENT,
    `The gzip data is corrupt: ${message}`,
  );
}
