/**
 * Download URLs of results, signed when `SALES_URL_SECRET` is set. The service builds them with
 * {@linkcode DownloadUrlSigner}, which needs the public base URL; the result server checks them
 * with {@linkcode DownloadUrlVerifier}, which needs only the secret. The format lives here alone:
 *
 * `<PUBLIC_RESULTS_URL>/results/<result id>.csv?exp=<unix seconds>&sig=<base64url HMAC-SHA256>`
 *
 * The MAC covers a purpose label, the result id and the expiry (`sales-result-v1\n<id>\n<exp>`), so
 * a signature is valid for one result until one moment only. Without a secret, URLs are the plain
 * `<PUBLIC_RESULTS_URL>/results/<result id>.csv` and anyone who has one can download the result.
 *
 * A result's page on the web port (`page_path`) is signed the same way, with the same secret,
 * lifetime and query parameters, under its own purpose label (`sales-page-v1`), so a download
 * signature does not open the page nor the reverse: `/r/<result id>?exp=<unix seconds>&sig=<...>`
 * ({@linkcode DownloadUrlSigner.pagePathFor}, {@linkcode DownloadUrlVerifier.verifyPage}).
 *
 * @example
 * ```ts
 * import { DownloadUrlSigner, DownloadUrlVerifier } from "./download_url.ts";
 * const secret = "a long random secret";
 * const signer = new DownloadUrlSigner({ publicResultsUrl: "http://localhost:8080", secret });
 * const verifier = new DownloadUrlVerifier({ secret });
 * const resultId = "0123456789abcdef0123456789abcdef";
 * const url = new URL(signer.urlFor(resultId));
 * if (verifier.verify(resultId, url.searchParams) !== undefined) throw new Error("should be valid");
 * url.searchParams.set("exp", String(Number(url.searchParams.get("exp")) + 3600));
 * if (verifier.verify(resultId, url.searchParams)?.kind !== "invalid") throw new Error("tampered");
 * ```
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";

/** Options of {@linkcode DownloadUrlSigner}. */
export interface DownloadUrlSignerOptions {
  /** Base of every URL (`PUBLIC_RESULTS_URL`), without a trailing slash. */
  publicResultsUrl: string;
  /** HMAC key (`SALES_URL_SECRET`); undefined or empty leaves URLs unsigned. @default {undefined} */
  secret?: string;
  /** Lifetime of a signed URL in seconds (`DOWNLOAD_URL_TTL_SEC`). @default {3600} */
  ttlSec?: number;
  /** Millisecond wall clock, for tests. @default {Date.now} */
  now?: () => number;
}

/** Options of {@linkcode DownloadUrlVerifier}. */
export interface DownloadUrlVerifierOptions {
  /** HMAC key (`SALES_URL_SECRET`); undefined or empty accepts every URL. @default {undefined} */
  secret?: string;
  /** Millisecond wall clock, for tests. @default {Date.now} */
  now?: () => number;
}

/**
 * Why a signed URL or page link is refused: `"expired"` once its time is over (said only of a
 * link this server signed: the signature is checked first), `"invalid"` when it is unsigned,
 * malformed or signed for something else. `message` is the reason, worded for the user.
 */
export interface LinkRefusal {
  kind: "expired" | "invalid";
  message: string;
}

/** The two query parameters of a signed URL. */
const EXPIRY_PARAM = "exp";
const SIGNATURE_PARAM = "sig";
/** A base64url HMAC-SHA256 without padding: 32 bytes in 43 characters. */
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
const EXPIRY = /^\d{1,15}$/;
const encoder = new TextEncoder();

/** Builds result download URLs, signed when a secret is set. */
export class DownloadUrlSigner {
  readonly #publicResultsUrl: string;
  readonly #secret: string | undefined;
  readonly #ttlSec: number;
  readonly #now: () => number;

  constructor(options: DownloadUrlSignerOptions) {
    this.#publicResultsUrl = options.publicResultsUrl;
    this.#secret = secretOf(options.secret);
    this.#ttlSec = options.ttlSec ?? 3600;
    this.#now = options.now ?? Date.now;
  }

  /** Whether URLs carry an expiry and a signature. */
  get signed(): boolean {
    return this.#secret !== undefined;
  }

  /** The URL of a result's CSV; signed, and valid for the configured lifetime, when signing is on. */
  urlFor(resultId: string): string {
    return this.#signed(`${this.#publicResultsUrl}/results/${resultId}.csv`, DOWNLOAD, resultId);
  }

  /**
   * The path of a result's page on the web port, `/r/<result id>`; signed like {@linkcode urlFor}
   * (same lifetime and query parameters, its own purpose) when signing is on.
   */
  pagePathFor(resultId: string): string {
    return this.#signed(`${PAGE_PATH_PREFIX}${resultId}`, PAGE, resultId);
  }

  #signed(url: string, purpose: string, resultId: string): string {
    if (this.#secret === undefined) return url;
    const expiry = Math.floor(this.#now() / 1000) + this.#ttlSec;
    const signature = signatureOf(this.#secret, purpose, resultId, String(expiry));
    return `${url}?${EXPIRY_PARAM}=${expiry}&${SIGNATURE_PARAM}=${signature}`;
  }
}

/** Checks the signature and expiry of result download URLs, when a secret is set. */
export class DownloadUrlVerifier {
  readonly #secret: string | undefined;
  readonly #now: () => number;

  constructor(options: DownloadUrlVerifierOptions = {}) {
    this.#secret = secretOf(options.secret);
    this.#now = options.now ?? Date.now;
  }

  /** Whether URLs must carry a valid, unexpired signature. */
  get signed(): boolean {
    return this.#secret !== undefined;
  }

  /**
   * Why a request for `resultId` with these query parameters must be refused, or undefined when
   * it may be served (always, when signing is off). The signature is checked before the expiry,
   * so `"expired"` is only ever said of a URL this server signed.
   */
  verify(resultId: string, params: URLSearchParams): LinkRefusal | undefined {
    return this.#verify(DOWNLOAD, "download URL", resultId, params);
  }

  /**
   * As {@linkcode verify}, for a result's page: `resultId` from the path `/r/<result id>` and the
   * request URL's query parameters. Only a `page_path` the service signed passes, not a download
   * URL's signature.
   */
  verifyPage(resultId: string, params: URLSearchParams): LinkRefusal | undefined {
    return this.#verify(PAGE, "page link", resultId, params);
  }

  #verify(
    purpose: string,
    what: string,
    resultId: string,
    params: URLSearchParams,
  ): LinkRefusal | undefined {
    if (this.#secret === undefined) return undefined;
    const expiry = params.get(EXPIRY_PARAM);
    const signature = params.get(SIGNATURE_PARAM);
    if (expiry === null || signature === null) {
      return {
        kind: "invalid",
        message: `This ${what} is not signed: ask the service for a new one`,
      };
    }
    if (!EXPIRY.test(expiry) || !SIGNATURE.test(signature)) {
      return { kind: "invalid", message: `The signature of this ${what} is not valid` };
    }
    // Compared as text, not decoded: base64url's last character has spare bits, so decoding would
    // accept several spellings of one signature. Both are 43 bytes, as timingSafeEqual requires.
    const expected = encoder.encode(signatureOf(this.#secret, purpose, resultId, expiry));
    if (!timingSafeEqual(encoder.encode(signature), expected)) {
      return { kind: "invalid", message: `The signature of this ${what} is not valid` };
    }
    if (Math.floor(this.#now() / 1000) > Number(expiry)) {
      const at = new Date(Number(expiry) * 1000).toISOString();
      return {
        kind: "expired",
        message: `This ${what} expired at ${at}: ask the service for a new one`,
      };
    }
    return undefined;
  }
}

/** An empty secret turns signing off, as an unset one does. */
function secretOf(secret: string | undefined): string | undefined {
  return secret === "" ? undefined : secret;
}

/** The path of a result's page on the web port, before its id. */
export const PAGE_PATH_PREFIX = "/r/";
/** The purpose labels: a download URL's signature never opens a page, nor the reverse. */
const DOWNLOAD = "sales-result-v1";
const PAGE = "sales-page-v1";

/** The MAC binds a purpose label, the id and the expiry: one use of one result, until one moment. */
function signatureOf(secret: string, purpose: string, resultId: string, expiry: string): string {
  return createHmac("sha256", secret)
    .update(`${purpose}\n${resultId}\n${expiry}`)
    .digest("base64url");
}
