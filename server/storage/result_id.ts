/**
 * Result ids: 32 lowercase hex characters (128 bits) from a cryptographic random source, so ids
 * cannot be guessed and, being only hex, can never name a path outside the results folder.
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";
import { toHex } from "./hex.ts";

/**
 * The source of {@linkcode RANDOM_ID} without anchors, for the patterns that embed an id (file
 * names, URL paths, upload ids).
 */
export const RANDOM_ID_SOURCE = "[0-9a-f]{32}";

/** The shape of every random id the service hands out (results and chunked uploads). */
export const RANDOM_ID = new RegExp(`^${RANDOM_ID_SOURCE}$`);

/**
 * The source of {@linkcode REPLICA_ID} without anchors. A replica id goes into file names and
 * upload ids, so it never holds a path separator.
 */
export const REPLICA_ID_SOURCE = "[A-Za-z0-9][A-Za-z0-9._-]{0,62}";

/** What a replica id (`REPLICA_ID`) may be: letters, digits, `.`, `_` and `-`, at most 63. */
export const REPLICA_ID = new RegExp(`^${REPLICA_ID_SOURCE}$`);

/**
 * An upload id: a random id, then `.` and the id of the replica that holds the upload; ids from a
 * server without a replica id are the random id alone. Group 1 is the random id, group 2 the
 * replica id.
 */
export const UPLOAD_ID = new RegExp(`^(${RANDOM_ID_SOURCE})(?:\\.(${REPLICA_ID_SOURCE}))?$`);

/** A result file's name, `<result id>.csv`; group 1 is the id. */
export const RESULT_CSV_NAME = new RegExp(`^(${RANDOM_ID_SOURCE})\\.csv$`);

/** A new random id: 128 bits from a cryptographic source, as 32 lowercase hex characters. */
export function newRandomId(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(16)));
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
