/**
 * The `x-request-id` of a call: the client's, when it is safe to log and echo, else a new one.
 * Both transports resolve it once per call, put it in the response metadata and hand it to the
 * service in {@linkcode CallContext}, which writes it in the upload's log line.
 *
 * @example
 * ```ts
 * import { resolveRequestId } from "./request_id.ts";
 * if (resolveRequestId("abc-123") !== "abc-123") throw new Error();
 * if (resolveRequestId("bad\nline") === "bad\nline") throw new Error();
 * ```
 *
 * @module
 */

import type { CallContext } from "./types.ts";

/** The header (gRPC metadata key) a request id travels in, both ways. */
export const REQUEST_ID_HEADER = "x-request-id";

/** Longest request id accepted from a client. */
export const MAX_REQUEST_ID_LENGTH = 128;

/** Printable ASCII only: no control character can break a log line or a header. */
const SAFE_REQUEST_ID = new RegExp(`^[\\x20-\\x7e]{1,${MAX_REQUEST_ID_LENGTH}}$`);

/**
 * `value` (the client's `x-request-id`, trimmed) when it is 1 to 128 printable ASCII characters;
 * otherwise, or when there is none, a new random UUID.
 */
export function resolveRequestId(value: string | undefined): string {
  const trimmed = value?.trim();
  if (trimmed !== undefined && SAFE_REQUEST_ID.test(trimmed)) return trimmed;
  return crypto.randomUUID();
}

/** The request id of a call: the one its transport resolved, else the header's, resolved now. */
export function requestIdOf(ctx: CallContext): string {
  return ctx.requestId ?? resolveRequestId(ctx.header(REQUEST_ID_HEADER));
}
