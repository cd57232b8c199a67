/**
 * The gRPC-Web request body between the socket and connect-es: it reads each message's 5-byte
 * prefix (flags, then a big-endian length) and reserves the declared length from the process-wide
 * {@linkcode BufferBudget} before it lets the message's bytes through. Waiting for a reservation is
 * backpressure: the body is not read meanwhile. A reservation is held until the next message starts
 * or the call ends ({@linkcode RequestEnvelopeStream.release}); a refusal fails the call with
 * `RESOURCE_EXHAUSTED` and a retry hint.
 *
 * gzip messages (`grpc-encoding: gzip`) are inflated here rather than by connect, so that the
 * inflated size is reserved as well, before inflating, from the size the gzip trailer declares.
 *
 * @example
 * ```ts
 * import { BufferBudget } from "../service/buffer_budget.ts";
 * import { RequestEnvelopeStream } from "./request_envelope_stream.ts";
 *
 * const budget = new BufferBudget({ maxBytes: 1024 });
 * const envelopes = new RequestEnvelopeStream({ budget, readMaxBytes: 1024 });
 * const body = ReadableStream.from([new Uint8Array([0, 0, 0, 0, 3, 1, 2, 3])]);
 * const reader = body.pipeThrough(envelopes).getReader();
 * await reader.read();
 * const reserved = [budget.reserved]; // held while the message is read
 * envelopes.release(); // at the end of the call
 * reserved.push(budget.reserved);
 * if (reserved.join() !== "3,0") throw new Error(`reserved ${reserved}`);
 * ```
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import { AppError, RETRY_PUSHBACK_HEADER } from "../errors.ts";
import type { BufferBudget, Reservation } from "../service/buffer_budget.ts";
import { gzipCompression, gzipDeclaredSize } from "./gzip_compression.ts";

/** Options of {@linkcode RequestEnvelopeStream}. */
export interface RequestEnvelopeStreamOptions {
  /** The memory budget messages are reserved from. @default {none: nothing is counted} */
  budget?: BufferBudget;
  /** Largest message accepted, in bytes, compressed or not (`MAX_MESSAGE_BYTES`). */
  readMaxBytes: number;
  /**
   * Inflate messages flagged as compressed (the request said `grpc-encoding: gzip`). Otherwise
   * they pass through for connect to judge. @default {false}
   */
  gzip?: boolean;
  /** Aborts a wait for the budget (the client went away). */
  signal?: AbortSignal;
}

const PREFIX_BYTES = 5;
const COMPRESSED_FLAG = 0x01;

/** A pass-through for a gRPC-Web request body that counts its messages against a budget. */
export class RequestEnvelopeStream extends TransformStream<Uint8Array, Uint8Array> {
  readonly #release: () => void;

  constructor(options: RequestEnvelopeStreamOptions) {
    const { budget, readMaxBytes, signal } = options;
    const held: Reservation[] = [];
    /** Stops the clock of the message arriving now, once its last byte came. */
    let stopClock: (() => void) | undefined;
    const release = () => {
      stopClock?.();
      stopClock = undefined;
      for (const reservation of held.splice(0)) reservation.release();
    };
    /** Set on the first chunk: a message arriving too slowly errors the stream from a timer. */
    let streamController: TransformStreamDefaultController<Uint8Array> | undefined;
    const prefix = new Uint8Array(PREFIX_BYTES);
    let prefixFill = 0;
    /** Bytes of the current message still to come. */
    let remaining = 0;
    /** Parts of a compressed message, gathered to be inflated whole. */
    let compressedParts: Uint8Array[] | undefined;
    let compressedLength = 0;

    const reserve = async (bytes: number) => {
      if (budget === undefined) return;
      try {
        held.push(await budget.reserve(bytes, signal));
      } catch (error) {
        throw toConnectError(error);
      }
    };

    const startMessage = async (controller: TransformStreamDefaultController<Uint8Array>) => {
      // The previous message has been handed on, and connect has parsed it: its bytes are not ours.
      release();
      const flags = prefix[0];
      const length = new DataView(prefix.buffer).getUint32(1);
      if (length > readMaxBytes) {
        throw new ConnectError(
          `Request message of ${length} bytes is larger than MAX_MESSAGE_BYTES (${readMaxBytes} bytes)`,
          Code.ResourceExhausted,
        );
      }
      await reserve(length);
      remaining = length;
      if (budget !== undefined && length > 0) {
        // The room is held only while the message keeps arriving (see BufferBudget.receiveClock).
        stopClock = budget.receiveClock(length, (error) => {
          release();
          streamController?.error(toConnectError(error));
        });
      }
      if (options.gzip && (flags & COMPRESSED_FLAG) !== 0) {
        compressedParts = [];
        compressedLength = 0;
        if (length === 0) await finishCompressed(controller, flags);
      } else {
        controller.enqueue(prefix.slice());
      }
    };

    const finishCompressed = async (
      controller: TransformStreamDefaultController<Uint8Array>,
      flags: number,
    ) => {
      const compressed = concat(compressedParts!, compressedLength);
      compressedParts = undefined;
      const declared = gzipDeclaredSize(compressed);
      if (declared === undefined) {
        throw new ConnectError(
          "Request message is flagged as compressed but is not gzip",
          Code.InvalidArgument,
        );
      }
      if (declared > readMaxBytes) {
        throw new ConnectError(
          `Request message of ${declared} bytes (after gzip) is larger than MAX_MESSAGE_BYTES (${readMaxBytes} bytes)`,
          Code.ResourceExhausted,
        );
      }
      // Reserved before inflating, from the trailer's claim; zlib stops if the claim is a lie.
      await reserve(declared);
      const message = await gzipCompression.decompress(compressed, declared);
      const header = new Uint8Array(PREFIX_BYTES);
      header[0] = flags & ~COMPRESSED_FLAG;
      new DataView(header.buffer).setUint32(1, message.length);
      controller.enqueue(header);
      controller.enqueue(message);
    };

    super({
      transform: async (chunk, controller) => {
        streamController = controller;
        let offset = 0;
        while (offset < chunk.length) {
          if (remaining === 0 && compressedParts === undefined) {
            const take = Math.min(PREFIX_BYTES - prefixFill, chunk.length - offset);
            prefix.set(chunk.subarray(offset, offset + take), prefixFill);
            prefixFill += take;
            offset += take;
            if (prefixFill < PREFIX_BYTES) break;
            prefixFill = 0;
            await startMessage(controller);
            continue;
          }
          const take = Math.min(remaining, chunk.length - offset);
          const part = chunk.subarray(offset, offset + take);
          offset += take;
          remaining -= take;
          if (remaining === 0) {
            stopClock?.();
            stopClock = undefined;
          }
          if (compressedParts === undefined) {
            controller.enqueue(part);
            continue;
          }
          compressedParts.push(part);
          compressedLength += take;
          if (remaining === 0) await finishCompressed(controller, prefix[0]);
        }
      },
    });
    this.#release = release;
  }

  /** Returns the bytes held for the current message to the budget (idempotent). */
  release(): void {
    this.#release();
  }
}

/** An AppError (a budget refusal) as the ConnectError connect turns into trailers. */
export function toConnectError(error: unknown): unknown {
  if (!(error instanceof AppError)) return error;
  const trailers = error.retryAfterMs === undefined
    ? undefined
    : { [RETRY_PUSHBACK_HEADER]: String(Math.ceil(error.retryAfterMs)) };
  return new ConnectError(error.message, error.code as number as Code, trailers);
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
