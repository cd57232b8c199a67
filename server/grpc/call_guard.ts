/**
 * The grpc-js server interceptor that guards every call on the native port before its request
 * messages are read, so nothing untrusted is buffered before it is allowed:
 *
 * - the bearer token of a protected service is checked when the metadata arrives; a call without a
 *   valid one ends with `UNAUTHENTICATED` while its HTTP/2 stream is still paused (grpc-js reads a
 *   request only after the handler's first `startRead`, which a refused call never reaches);
 * - each request message reserves its declared length (the gRPC length prefix) from the shared
 *   {@linkcode BufferBudget} before the rest of it is read; when it does not fit, the stream is
 *   paused, so HTTP/2 flow control holds the client, until room comes or the budget refuses with
 *   `RESOURCE_EXHAUSTED` and a `grpc-retry-pushback-ms` trailer;
 * - a request message that does not decode ends with `INVALID_ARGUMENT` (grpc-js says `INTERNAL`),
 *   given service definitions passed through {@linkcode markUndecodable}.
 *
 * A refused call's stream is then reset with `NO_ERROR`, which tells the client to stop sending
 * the rest of its request (RFC 9113, section 8.1), as grpc-go does.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { constants as http2Constants } from "node:http2";
import { Status } from "../errors.ts";
import { consoleLogger, type Logger } from "../logger.ts";
import type { BufferBudget, Reservation } from "../service/buffer_budget.ts";
import type { CallContext } from "../service/types.ts";
import { toGrpcStatus } from "./grpc_status.ts";

/** Options of {@linkcode createCallGuard}. */
export interface CallGuardOptions {
  /**
   * Checks a call's metadata, throwing `UNAUTHENTICATED` (`createTokenCheck` from
   * `service/auth.ts`). @default {undefined} (no check)
   */
  tokenCheck?: (ctx: CallContext) => void;
  /** Whether a method path (`/package.Service/Method`) needs the token. @default {every path} */
  needsToken?: (path: string) => boolean;
  /** Budget every request message is reserved from. @default {undefined} (no limit) */
  budget?: BufferBudget;
  /**
   * The server's `grpc.max_receive_message_length`: grpc-js refuses longer messages itself, so the
   * guard reserves nothing for them. @default {Infinity}
   */
  maxMessageBytes?: number;
  /** Where internal errors go. @default {consoleLogger} */
  logger?: Logger;
}

/** The `node:http2` server stream of a call, as far as the guard uses it. */
export interface RequestStream {
  on(event: "data", listener: (chunk: Uint8Array) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  close(code?: number): unknown;
  readonly readableFlowing: boolean | null;
  /** Bytes received and not read yet. */
  readonly readableLength: number;
  /** Whether response headers have been sent. */
  readonly headersSent: boolean;
  readonly closed: boolean;
  readonly destroyed: boolean;
}

/**
 * The HTTP/2 stream of grpc-js's base call (`BaseServerInterceptingCall`), which keeps it in a
 * private field named `stream`: there is no public way to see a message's length prefix before
 * grpc-js has read the whole message. grpc-js is pinned in deno.json, and `call_guard_test.ts`
 * fails if the field goes away. Undefined when `call` is not the base call or the field is gone.
 */
export function requestStreamOf(
  call: grpc.ServerInterceptingCallInterface,
): RequestStream | undefined {
  const stream = (call as unknown as { stream?: Partial<RequestStream> }).stream;
  if (
    typeof stream?.on !== "function" || typeof stream.pause !== "function" ||
    typeof stream.resume !== "function" || typeof stream.close !== "function" ||
    !("readableFlowing" in stream)
  ) {
    return undefined;
  }
  return stream as RequestStream;
}

/**
 * Creates the interceptor. Install it as the first (or only) entry of the grpc-js `Server`'s
 * `interceptors` option: it needs the base call to see request bytes as they arrive.
 */
export function createCallGuard(options: CallGuardOptions = {}): grpc.ServerInterceptor {
  const logger = options.logger ?? consoleLogger;
  const maxMessageBytes = options.maxMessageBytes ?? Infinity;
  const needsToken = options.needsToken ?? (() => true);
  let warnedNoStream = false;

  return (method, call) => {
    const stream = requestStreamOf(call);
    /** Ends the call with `status`; the stream reset stops the client sending the rest. */
    const refuse = (status: Partial<grpc.StatusObject>) => {
      meter?.end();
      // Only a trailers-only answer is complete once sent; trailers after response headers go
      // out later, and a reset now would cut them off.
      const trailersOnly = stream !== undefined && !stream.headersSent;
      call.sendStatus(status as grpc.StatusObject);
      if (trailersOnly && !stream.closed && !stream.destroyed) {
        stream.close(http2Constants.NGHTTP2_NO_ERROR);
      }
    };

    let meter: MessageMeter | undefined;
    if (options.budget !== undefined) {
      if (stream === undefined) {
        if (!warnedNoStream) {
          warnedNoStream = true;
          logger.error(
            "Cannot enforce MAX_BUFFERED_BYTES on the gRPC port:",
            new Error("grpc-js no longer exposes the request stream of a call (call.stream)"),
          );
        }
      } else {
        meter = new MessageMeter({
          stream,
          budget: options.budget,
          maxMessageBytes,
          releaseOnHandOver: method.requestStream,
          refuse: (error) => refuse(toGrpcStatus(error, method.path, logger)),
        });
      }
    }
    const tokenCheck = needsToken(method.path) ? options.tokenCheck : undefined;

    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (tokenCheck !== undefined) {
          try {
            tokenCheck(metadataContext(metadata));
          } catch (error) {
            refuse(toGrpcStatus(error, method.path, logger));
            return;
          }
        }
        next(metadata);
      })
      .withOnReceiveMessage((message, next) => {
        const handOver = () => {
          if (message instanceof UndecodableMessage) {
            refuse({
              code: Status.INVALID_ARGUMENT,
              details: `Cannot decode the request message of ${method.path}: ${message.reason}`,
            });
          } else {
            next(message);
          }
        };
        if (meter === undefined) handOver();
        else meter.deliver(handOver);
      })
      .withOnCancel(() => meter?.end())
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        meter?.end();
        next(status);
      })
      .build();
    return new GuardedCall(call, responder, meter);
  };
}

/** The call the guard hands on: reads requested while a message waits for room stay paused. */
class GuardedCall extends grpc.ServerInterceptingCall {
  readonly #meter: MessageMeter | undefined;

  constructor(
    next: grpc.ServerInterceptingCallInterface,
    responder: grpc.Responder,
    meter: MessageMeter | undefined,
  ) {
    super(next, responder);
    this.#meter = meter;
  }

  override startRead(): void {
    // grpc-js resumes the stream here when its queue is empty; keep it paused while waiting.
    super.startRead();
    this.#meter?.afterStartRead();
  }
}

/** A message whose length prefix has arrived. */
interface MeteredMessage {
  reservation?: Reservation;
  /** Set once its last byte arrived. */
  received?: boolean;
  /** Stops the clock that ends the call if the message arrives too slowly. */
  stopClock?: () => void;
  /** Set while the message waits for room. */
  wait?: AbortController;
  /** Hands the message over once it has room. */
  onRoom?: () => void;
}

/**
 * Follows the gRPC framing (1 flag byte, 4 length bytes, then the message) of one call's request
 * stream as it arrives, and holds each message's declared length against the budget. A message is
 * handed to the handler only once it has room. A unary handler keeps its request until the call
 * ends, so that reservation lasts as long; a streaming handler consumes each message before it asks
 * for the next, so its reservations are released as messages are handed over.
 */
class MessageMeter {
  readonly #stream: RequestStream;
  readonly #budget: BufferBudget;
  readonly #maxMessageBytes: number;
  readonly #releaseOnHandOver: boolean;
  readonly #refuse: (error: unknown) => void;
  /** Messages not handed over yet, oldest first (grpc-js hands them over in this order). */
  readonly #pending: MeteredMessage[] = [];
  /** Messages handed over whose reservations last until the call ends. */
  readonly #held: MeteredMessage[] = [];
  readonly #prefix = new Uint8Array(5);
  readonly #prefixView = new DataView(this.#prefix.buffer);
  #prefixFilled = 0;
  #bodyRemaining = 0;
  /** The message whose bytes are arriving now. */
  #receiving: MeteredMessage | undefined;
  #waiting = 0;
  /** Whether grpc-js wanted the stream flowing when it was paused for room. */
  #resumeOnRoom = false;
  #ended = false;

  constructor(options: {
    stream: RequestStream;
    budget: BufferBudget;
    maxMessageBytes: number;
    releaseOnHandOver: boolean;
    refuse: (error: unknown) => void;
  }) {
    this.#stream = options.stream;
    this.#budget = options.budget;
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#releaseOnHandOver = options.releaseOnHandOver;
    this.#refuse = options.refuse;
    // A passive listener: grpc-js's own one was added first and keeps the stream paused until
    // the handler reads, so adding this one does not start the flow.
    this.#stream.on("data", (chunk) => this.#observe(chunk));
  }

  /** Runs `handOver` for the oldest message once it has room; never after the call ended. */
  deliver(handOver: () => void): void {
    if (this.#ended) return;
    const message = this.#pending[0];
    if (message === undefined) return handOver();
    if (message.wait !== undefined) {
      message.onRoom = () => this.deliver(handOver);
      return;
    }
    this.#pending.shift();
    if (this.#releaseOnHandOver) message.reservation?.release();
    else this.#held.push(message);
    handOver();
  }

  /** The call ended: releases everything and stops watching. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const message of [...this.#pending.splice(0), ...this.#held.splice(0)]) {
      message.stopClock?.();
      message.reservation?.release();
      message.wait?.abort();
    }
  }

  /** grpc-js was asked to read on: if a message still waits for room, pause again. */
  afterStartRead(): void {
    if (this.#waiting > 0 && !this.#ended && this.#stream.readableFlowing === true) {
      this.#resumeOnRoom = true;
      this.#stream.pause();
    }
  }

  #observe(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length && !this.#ended) {
      if (this.#bodyRemaining > 0) {
        const skipped = Math.min(this.#bodyRemaining, chunk.length - at);
        this.#bodyRemaining -= skipped;
        at += skipped;
        if (this.#bodyRemaining === 0) this.#arrived();
        continue;
      }
      this.#prefix[this.#prefixFilled++] = chunk[at++];
      if (this.#prefixFilled === 5) {
        this.#prefixFilled = 0;
        const length = this.#prefixView.getUint32(1);
        if (length > this.#maxMessageBytes) {
          // grpc-js refuses it with RESOURCE_EXHAUSTED; the framing after it is never read.
          this.end();
          return;
        }
        this.#bodyRemaining = length;
        this.#admit(length);
      }
    }
  }

  /** The message being received is complete: its room is no longer on a clock. */
  #arrived(): void {
    const message = this.#receiving;
    if (message === undefined) return;
    this.#receiving = undefined;
    message.received = true;
    message.stopClock?.();
  }

  /** Room was granted to a message still arriving: it must now arrive at a minimum rate. */
  #startClock(message: MeteredMessage, bytes: number): void {
    if (message.received || this.#ended) return;
    message.stopClock = this.#budget.receiveClock(bytes, (error) => {
      if (!this.#ended) this.#refuse(error);
    });
  }

  #admit(bytes: number): void {
    const message: MeteredMessage = {};
    this.#pending.push(message);
    if (bytes === 0) return;
    this.#receiving = message;
    if (this.#waiting === 0) {
      message.reservation = this.#budget.tryReserve(bytes);
      if (message.reservation !== undefined) return this.#startClock(message, bytes);
      this.#resumeOnRoom = this.#stream.readableFlowing === true;
      this.#stream.pause();
    }
    this.#waiting++;
    const wait = new AbortController();
    message.wait = wait;
    this.#budget.reserve(bytes, wait.signal).then(
      (reservation) => {
        message.wait = undefined;
        if (this.#ended) reservation.release();
        else {
          message.reservation = reservation;
          this.#startClock(message, bytes);
        }
        this.#roomFound();
        message.onRoom?.();
      },
      (error) => {
        message.wait = undefined;
        if (!this.#ended) this.#refuse(error);
        this.#roomFound();
      },
    );
  }

  #roomFound(): void {
    this.#waiting--;
    if (this.#waiting > 0 || this.#ended) return;
    if (this.#resumeOnRoom) this.#stream.resume();
    this.#resumeOnRoom = false;
  }
}

/** A request message that did not decode, passed on so the guard can answer `INVALID_ARGUMENT`. */
export class UndecodableMessage {
  constructor(readonly reason: string) {}
}

/**
 * A copy of `definition` whose request deserializers return an {@linkcode UndecodableMessage}
 * instead of throwing. grpc-js answers a throwing deserializer itself with `INTERNAL`, from its base
 * call, where no interceptor can change the status.
 */
export function markUndecodable(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const marked: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const deserialize = method.requestDeserialize;
    marked[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return deserialize(bytes);
        } catch (error) {
          return new UndecodableMessage(error instanceof Error ? error.message : String(error));
        }
      },
    };
  }
  return marked as grpc.ServiceDefinition;
}

/** Call metadata as the token check reads it. */
function metadataContext(metadata: grpc.Metadata): CallContext {
  return {
    signal: NEVER_ABORTED,
    header(name) {
      const value = metadata.get(name.toLowerCase())[0];
      return value === undefined ? undefined : String(value);
    },
  };
}

const NEVER_ABORTED = new AbortController().signal;
