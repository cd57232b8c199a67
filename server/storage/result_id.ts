/**
 * Result ids: 32 lowercase hex characters (128 bits) from a cryptographic random source, so ids
 * cannot be guessed and, being only hex, can never name a path outside the results folder.
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";

/** The shape of every random id the service hands out (results and chunked uploads). */
export const RANDOM_ID = /^[0-9a-f]{32}$/;

/** A new random id: 128 bits from a cryptographic source, as 32 lowercase hex characters. */
export function newRandomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A new result id. */
export const newResultId = newRandomId;

/** Whether `value` has the shape of a result id. */
export function isResultId(value: string): boolean {
  return RANDOM_ID.test(value);
}

/** Returns `value` when it is a well-formed result id, else throws `AppError(INVALID_ARGUMENT)`. */
export function parseResultId(value: string): string {
  return parseRandomId(value, "result");
}

/** Returns `value` when it has the shape of a random id, else throws `AppError(INVALID_ARGUMENT)`. */
export function parseRandomId(value: string, kind: "result" | "upload"): string {
  if (!RANDOM_ID.test(value)) {
    throw new AppError(
      Status.INVALID_ARGUMENT,
      `Malformed ${kind} id ${
        JSON.stringify(value.slice(0, 64))
      }: expected 32 lowercase hex characters`,
    );
  }
  return value;
}
