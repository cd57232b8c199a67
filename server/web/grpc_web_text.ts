/**
 * Streaming base64 for `application/grpc-web-text`, the mode the official `grpc-web` JavaScript
 * client uses by default and that `@connectrpc/connect` 2.x refuses with 415. The gRPC-Web endpoint
 * wraps these around connect's binary handler: request bodies are decoded on the way in, response
 * bodies encoded on the way out, chunk by chunk, so a text-mode upload still streams.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Base64DecodeStream, Base64EncodeStream } from "./grpc_web_text.ts";
 *
 * const bytes = new Uint8Array([0, 1, 2, 250, 251, 252, 253]);
 * const roundTrip = ReadableStream.from([bytes.subarray(0, 2), bytes.subarray(2)])
 *   .pipeThrough(new Base64EncodeStream())
 *   .pipeThrough(new Base64DecodeStream());
 * assert.deepEqual(new Uint8Array(await new Response(roundTrip).arrayBuffer()), bytes);
 * ```
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ENCODE = new TextEncoder().encode(ALPHABET);
const PAD = 64;
const SKIP = 65;
const INVALID = 255;
const DECODE = new Uint8Array(256).fill(INVALID);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;
// URL-safe letters too: some clients use them, and they cannot be confused with anything else.
DECODE["-".charCodeAt(0)] = 62;
DECODE["_".charCodeAt(0)] = 63;
DECODE["=".charCodeAt(0)] = PAD;
for (const space of [" ", "\t", "\r", "\n"]) DECODE[space.charCodeAt(0)] = SKIP;

function invalidBase64(detail: string): ConnectError {
  return new ConnectError(`Invalid grpc-web-text request body: ${detail}`, Code.InvalidArgument);
}

/**
 * Decodes base64 text that may arrive in arbitrary chunks and may contain padded segments in the
 * middle: grpc-web-text clients and proxies base64-encode each message (or each write) separately
 * and concatenate the results.
 */
export class Base64Decoder {
  #quad = new Uint8Array(4);
  #count = 0;

  /** Decodes the complete 4-character groups available so far; keeps a partial group for later. */
  push(text: Uint8Array): Uint8Array {
    const out = new Uint8Array(Math.floor((text.length + this.#count) / 4) * 3);
    let written = 0;
    const quad = this.#quad;
    let count = this.#count;
    for (let i = 0; i < text.length; i++) {
      const value = DECODE[text[i]];
      if (value === SKIP) continue;
      if (value === INVALID) throw invalidBase64(`unexpected byte ${text[i]}`);
      if (value !== PAD && count > 0 && quad[count - 1] === PAD) {
        throw invalidBase64("data after padding inside a group");
      }
      quad[count++] = value;
      if (count < 4) continue;
      count = 0;
      if (quad[0] === PAD || quad[1] === PAD) throw invalidBase64("misplaced padding");
      out[written++] = (quad[0] << 2) | (quad[1] >> 4);
      if (quad[2] === PAD) continue;
      out[written++] = ((quad[1] & 15) << 4) | (quad[2] >> 2);
      if (quad[3] === PAD) continue;
      out[written++] = ((quad[2] & 3) << 6) | quad[3];
    }
    this.#count = count;
    return out.subarray(0, written);
  }

  /** Ends the input: an unpadded final group of 2 or 3 characters is accepted, 1 is not. */
  finish(): Uint8Array {
    const count = this.#count;
    this.#count = 0;
    if (count === 0) return new Uint8Array(0);
    if (count === 1 || this.#quad.subarray(0, count).includes(PAD)) {
      throw invalidBase64("truncated final group");
    }
    const quad = this.#quad;
    const out = [(quad[0] << 2) | (quad[1] >> 4)];
    if (count === 3) out.push(((quad[1] & 15) << 4) | (quad[2] >> 2));
    return new Uint8Array(out);
  }
}

/** Encodes bytes arriving in arbitrary chunks as one continuous, padded-only-at-the-end base64 text. */
export class Base64Encoder {
  #carry = new Uint8Array(2);
  #carried = 0;

  /** Encodes every complete 3-byte group available so far; carries up to 2 bytes to the next call. */
  push(bytes: Uint8Array): Uint8Array {
    const total = this.#carried + bytes.length;
    const groups = Math.floor(total / 3);
    const out = new Uint8Array(groups * 4);
    let read = 0;
    let written = 0;
    // Only the first group can mix carried and new bytes; the rest read `bytes` directly.
    const byteAt = (index: number) =>
      index < this.#carried ? this.#carry[index] : bytes[index - this.#carried];
    for (let group = 0; group < groups; group++, read += 3) {
      const triple = group === 0 && this.#carried > 0
        ? (byteAt(0) << 16) | (byteAt(1) << 8) | byteAt(2)
        : (bytes[read - this.#carried] << 16) | (bytes[read - this.#carried + 1] << 8) |
          bytes[read - this.#carried + 2];
      out[written++] = ENCODE[triple >> 18];
      out[written++] = ENCODE[(triple >> 12) & 63];
      out[written++] = ENCODE[(triple >> 6) & 63];
      out[written++] = ENCODE[triple & 63];
    }
    const rest = total - read;
    const carried = [];
    for (let i = 0; i < rest; i++) carried.push(byteAt(read + i));
    this.#carry.set(carried);
    this.#carried = rest;
    return out;
  }

  /** Encodes the carried bytes, with padding. */
  finish(): Uint8Array {
    const carried = this.#carried;
    this.#carried = 0;
    if (carried === 0) return new Uint8Array(0);
    const b0 = this.#carry[0];
    const b1 = carried === 2 ? this.#carry[1] : 0;
    const triple = (b0 << 16) | (b1 << 8);
    return new Uint8Array([
      ENCODE[triple >> 18],
      ENCODE[(triple >> 12) & 63],
      carried === 2 ? ENCODE[(triple >> 6) & 63] : 61,
      61,
    ]);
  }
}

/** A TransformStream from base64 text bytes to the bytes they encode. */
export class Base64DecodeStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor() {
    const decoder = new Base64Decoder();
    super({
      transform(chunk, controller) {
        const bytes = decoder.push(chunk);
        if (bytes.length > 0) controller.enqueue(bytes);
      },
      flush(controller) {
        const bytes = decoder.finish();
        if (bytes.length > 0) controller.enqueue(bytes);
      },
    });
  }
}

/** A TransformStream from bytes to their base64 text (as ASCII bytes). */
export class Base64EncodeStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor() {
    const encoder = new Base64Encoder();
    super({
      transform(chunk, controller) {
        const text = encoder.push(chunk);
        if (text.length > 0) controller.enqueue(text);
      },
      flush(controller) {
        const text = encoder.finish();
        if (text.length > 0) controller.enqueue(text);
      },
    });
  }
}
