/**
 * Conditional requests (RFC 9110 section 13), the one implementation the result server and the
 * static files share: `If-Match` / `If-Unmodified-Since` (412), `If-None-Match` /
 * `If-Modified-Since` (304), and `If-Range`.
 *
 * The preconditions are evaluated in the order of section 13.2.2: `If-Match`, or without it
 * `If-Unmodified-Since`; then `If-None-Match`, or without it `If-Modified-Since` (a date is only
 * looked at when the matching tag header is absent). `If-Match` and `If-Range` compare strongly (a
 * weak tag never matches); `If-None-Match` compares weakly (`W/"x"` matches `"x"`), as a GET or
 * HEAD must. A 304 keeps the response's headers but those describing a body (section 15.4.5).
 *
 * @example
 * ```ts
 * import { evaluatePreconditions } from "./conditional_get.ts";
 * const validators = { etag: '"abc"', lastModified: new Date("2026-01-01T00:00:00Z") };
 * const revalidation = new Headers({ "If-None-Match": 'W/"abc"' });
 * if (evaluatePreconditions(revalidation, validators) !== 304) throw new Error("weak match");
 * const update = new Headers({ "If-Match": '"old"' });
 * if (evaluatePreconditions(update, validators) !== 412) throw new Error("strong mismatch");
 * ```
 *
 * @module
 */

/** What identifies the representation a request may be conditional on. */
export interface Validators {
  /** Its entity tag, quoted (`"..."`), strong. */
  etag: string;
  /** When it last changed, if known; HTTP dates have whole seconds. @default {undefined} */
  lastModified?: Date;
}

/**
 * The outcome of a request's preconditions: 412 (Precondition Failed), 304 (Not Modified), or
 * undefined to answer normally.
 */
export function evaluatePreconditions(
  headers: Headers,
  validators: Validators,
): 304 | 412 | undefined {
  if (!preconditionsHold(headers, validators)) return 412;
  if (notModified(headers, validators)) return 304;
  return undefined;
}

/**
 * Sections 13.1.1 and 13.1.4: `If-Match` (strong comparison) or, without it,
 * `If-Unmodified-Since` (ignored when it is not a valid date). False means 412.
 */
function preconditionsHold(headers: Headers, { etag, lastModified }: Validators): boolean {
  const ifMatch = headers.get("If-Match");
  if (ifMatch !== null) {
    if (ifMatch.trim() === "*") return true;
    return tagsOf(ifMatch).some((tag) => tag === etag);
  }
  const ifUnmodifiedSince = headers.get("If-Unmodified-Since");
  if (ifUnmodifiedSince !== null && lastModified !== undefined) {
    const since = Date.parse(ifUnmodifiedSince);
    return Number.isNaN(since) || wholeSeconds(lastModified) <= since;
  }
  return true;
}

/**
 * Sections 13.1.2 and 13.1.3: `If-None-Match` (weak comparison) wins over `If-Modified-Since`,
 * which is ignored when it is not a valid date.
 */
function notModified(headers: Headers, { etag, lastModified }: Validators): boolean {
  const ifNoneMatch = headers.get("If-None-Match");
  if (ifNoneMatch !== null) {
    if (ifNoneMatch.trim() === "*") return true;
    const opaque = weak(etag);
    return tagsOf(ifNoneMatch).some((tag) => weak(tag) === opaque);
  }
  const ifModifiedSince = headers.get("If-Modified-Since");
  if (ifModifiedSince !== null && lastModified !== undefined) {
    const since = Date.parse(ifModifiedSince);
    return !Number.isNaN(since) && wholeSeconds(lastModified) <= since;
  }
  return false;
}

/**
 * Section 13.1.5: whether a `Range` counts. It does without `If-Range`, or when `If-Range` names
 * this very representation: the same strong ETag, or exactly its `Last-Modified` date.
 */
export function ifRangeHolds(headers: Headers, { etag, lastModified }: Validators): boolean {
  const ifRange = headers.get("If-Range");
  if (ifRange === null) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) return value === etag;
  if (lastModified === undefined) return false;
  const date = Date.parse(value);
  return !Number.isNaN(date) && date === wholeSeconds(lastModified);
}

/**
 * Representation metadata a 304 leaves out (section 15.4.5): it describes a body the 304 does not
 * have, and a cache would otherwise take it for its stored copy's.
 */
const BODY_HEADERS = [
  "content-disposition",
  "content-encoding",
  "content-language",
  "content-length",
  "content-range",
  "content-type",
];

/**
 * A 304 for a representation whose 200 would carry `headers`, without a body: `ETag`,
 * `Cache-Control`, `Last-Modified`, `Vary` and the other response headers stay, so a cache can
 * update its copy.
 */
export function notModifiedResponse(headers: Headers): Response {
  const kept = new Headers(headers);
  for (const name of BODY_HEADERS) kept.delete(name);
  return new Response(null, { status: 304, headers: kept });
}

/** The entity tags of a comma-separated list, trimmed. */
function tagsOf(list: string): string[] {
  return list.split(",").map((tag) => tag.trim());
}

/** The opaque tag without its weakness indicator, for the weak comparison. */
function weak(tag: string): string {
  return tag.startsWith("W/") ? tag.slice(2) : tag;
}

/** A date at the whole-second precision of HTTP dates, in milliseconds. */
function wholeSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000) * 1000;
}
