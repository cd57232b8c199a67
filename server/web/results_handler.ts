/**
 * The result file server: `GET`/`HEAD /results/<result id>.csv`, with `ETag` and conditional
 * requests, and `GET /metrics` when given metrics (`metrics_handler.ts`). Only files named by a
 * well-formed id are served; there is no listing and nothing else in the folder is reachable.
 *
 * A request is judged in this order: a malformed or missing `Host` 400 and a host outside
 * `allowedHosts` 421 (see {@linkcode createHostCheck}), unknown path 404, method 405 (with `Allow`),
 * malformed file name 400, then,
 * when download URLs are signed, a missing, invalid or expired signature 403 (with the reason as
 * text), and only then an unknown result 404.
 *
 * A found result is then answered as RFC 9110 orders the preconditions: `If-Match` (or, without
 * it, `If-Unmodified-Since`) failing 412, `If-None-Match` (or `If-Modified-Since`) 304, then a
 * `Range` of one byte range (`bytes=a-b`, `a-`, `-n`) 206 with `Content-Range`, or 416 with
 * a `Content-Range` giving the size when it starts past the end; an `If-Range` that does not match
 * (strong ETag, or the exact `Last-Modified`) turns the range into the whole 200, so `curl -C -`
 * and browsers resume safely. Several ranges in one request get the whole file (200): results are
 * small enough, and multipart bodies help no client we serve. Every result response has
 * `Accept-Ranges: bytes` and `Cache-Control: no-store` (a result is private to whoever uploaded
 * it), and a download is named `<original name>.result.csv` from the result's metadata
 * (`result_file_name.ts`), or `<result id>.csv` for a result stored without. `HEAD` answers as
 * `GET` would, without the body.
 *
 * @example
 * ```ts
 * import { ResultStore } from "../storage/result_store.ts";
 * import { createResultsHandler } from "./results_handler.ts";
 * const dir = await Deno.makeTempDir();
 * const store = await ResultStore.open(dir);
 * const resultId = await store.save("Department Name,Total Number of Sales\n");
 * const handler = createResultsHandler({ store });
 * const response = await handler(new Request(`http://localhost/results/${resultId}.csv`));
 * if (response.status !== 200) throw new Error(`status ${response.status}`);
 * await response.body?.cancel();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { AppError, httpStatusOf, Status, toAppError } from "../errors.ts";
import type { DownloadUrlVerifier } from "../service/download_url.ts";
import { contentDisposition } from "../storage/result_file_name.ts";
import { RESULT_CSV_NAME } from "../storage/result_id.ts";
import type { ResultStore } from "../storage/result_store.ts";
import { evaluatePreconditions, ifRangeHolds, notModifiedResponse } from "./conditional_get.ts";
import { createHostCheck, plainText } from "./host_check.ts";
import {
  createMetricsHandler,
  METRICS_PATH,
  type MetricsHandlerOptions,
} from "./metrics_handler.ts";
import { consoleLogger } from "../logger.ts";

/** Options of {@linkcode createResultsHandler}. */
export interface ResultsHandlerOptions {
  /** Where the results live. */
  store: ResultStore;
  /**
   * Checks download URLs; when it signs them (`SALES_URL_SECRET`), a request without a valid,
   * unexpired signature is refused with 403 before the result is looked up, so a refusal never
   * reveals whether a result exists. @default {no check: anyone with the URL may download}
   */
  downloadUrls?: Pick<DownloadUrlVerifier, "verify">;
  /** Host names answered (`ALLOWED_HOSTS`); others get 421. @default {[]} (any host) */
  allowedHosts?: readonly string[];
  /** Called with unexpected errors before a generic 500 is sent. @default {consoleLogger.error} */
  logError?: (message: string, error: unknown) => void;
  /**
   * Serves `GET /metrics` (after the `Host` check) with these, behind their token when it has one.
   * @default {undefined} (no `/metrics`: 404)
   */
  metrics?: Omit<MetricsHandlerOptions, "logError">;
  /** Called when a result cannot be read for a reason other than not existing. @default {nothing} */
  onStorageError?: () => void;
}

const PREFIX = "/results/";

/** Builds the `Deno.serve` handler for result downloads. */
export function createResultsHandler(
  options: ResultsHandlerOptions,
): (request: Request, info?: Deno.ServeHandlerInfo) => Promise<Response> {
  const { store } = options;
  const logError = options.logError ?? ((message, error) => consoleLogger.error(message, error));
  const checkHost = createHostCheck({ allowedHosts: options.allowedHosts });
  const metrics = options.metrics && createMetricsHandler({ ...options.metrics, logError });

  return async (request, info) => {
    // Routing and the signature read the request target only, never a URL built from Host.
    const target = checkHost(request, info);
    if (target instanceof Response) return target;
    const { path: pathname, searchParams } = target;
    if (pathname === METRICS_PATH && metrics !== undefined) return metrics(request);
    if (!pathname.startsWith(PREFIX) || pathname === PREFIX) {
      return plainText(404, "Not found");
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return plainText(405, `Method ${request.method} not allowed for ${pathname}`, {
        Allow: "GET, HEAD",
      });
    }
    const match = RESULT_CSV_NAME.exec(pathname.slice(PREFIX.length));
    if (match === null) {
      return plainText(400, "Malformed result file name: expected <32 lowercase hex>.csv");
    }
    const resultId = match[1];
    const refusal = options.downloadUrls?.verify(resultId, searchParams);
    // Expired or not, a refused link is 403 here: download clients treat both alike (the
    // command's hint to download by id for a fresh link follows any 403).
    if (refusal !== undefined) return plainText(403, refusal.message);

    let opened;
    try {
      opened = await store.openResult(resultId);
    } catch (error) {
      const appError = toAppError(error);
      if (appError.code === Status.NOT_FOUND) return plainText(404, "Result not found");
      options.onStorageError?.();
      logError(`Cannot serve result ${resultId}:`, appError.cause ?? appError);
      return plainText(httpStatusOf(appError.code), safeMessage(appError));
    }

    // Results never change once written, so id and size identify the bytes; this survives restarts.
    const etag = `"${resultId}-${opened.size.toString(16)}"`;
    const { file, size, modified } = opened;
    const headers = new Headers({
      "Accept-Ranges": "bytes",
      // A result is private to whoever uploaded it: no cache, shared or not, may keep a copy.
      "Cache-Control": "no-store",
      "ETag": etag,
      "Last-Modified": modified.toUTCString(),
    });
    const validators = { etag, lastModified: modified };
    const precondition = evaluatePreconditions(request.headers, validators);
    if (precondition === 412) {
      file.close();
      return plainText(412, "Precondition failed: the result does not match If-Match", {
        ...Object.fromEntries(headers),
      });
    }
    if (precondition === 304) {
      file.close();
      return notModifiedResponse(headers);
    }
    const range = ifRangeHolds(request.headers, validators)
      ? parseRange(request.headers.get("Range"), size)
      : undefined;
    if (range === "unsatisfiable") {
      file.close();
      return plainText(416, `Range not satisfiable: the result has ${size} bytes`, {
        ...Object.fromEntries(headers),
        "Content-Range": `bytes */${size}`,
      });
    }
    let meta;
    try {
      meta = await store.readMeta(resultId);
    } catch (error) {
      file.close();
      throw error;
    }
    headers.set("Content-Type", "text/csv; charset=utf-8");
    headers.set(
      "Content-Disposition",
      contentDisposition(meta?.files.map((file) => file.name) ?? "", resultId),
    );
    headers.set("X-Content-Type-Options", "nosniff");
    const status = range === undefined ? 200 : 206;
    if (range === undefined) {
      headers.set("Content-Length", String(size));
    } else {
      headers.set("Content-Length", String(range.end - range.start + 1));
      headers.set("Content-Range", `bytes ${range.start}-${range.end}/${size}`);
    }
    if (request.method === "HEAD") {
      file.close();
      return new Response(null, { status, headers });
    }
    const body = range === undefined
      ? file.readable
      : fileSlice(file, range.start, range.end - range.start + 1);
    return new Response(body, { status, headers });
  };
}

/** One byte range, both ends included. */
interface ByteRange {
  start: number;
  end: number;
}

/**
 * The single byte range `header` asks for within `size` bytes (RFC 9110 section 14.1.2), or
 * `"unsatisfiable"` (416), or undefined to send the whole file: no header, another unit, a
 * malformed header (the RFC lets a server ignore it), several ranges, or an empty file.
 */
export function parseRange(
  header: string | null,
  size: number,
): ByteRange | "unsatisfiable" | undefined {
  if (header === null || size === 0) return undefined;
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (match === null) return undefined;
  const specs = match[1].split(",").map((spec) => spec.trim()).filter((spec) => spec !== "");
  if (specs.length !== 1) return undefined;
  // 15 digits keep every value exact as a number, and far past any result's size.
  const spec = /^(\d{0,15})\s*-\s*(\d{0,15})$/.exec(specs[0]);
  if (spec === null || (spec[1] === "" && spec[2] === "")) return undefined;
  if (spec[1] === "") {
    const suffix = Number(spec[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(spec[1]);
  const last = spec[2] === "" ? Infinity : Number(spec[2]);
  if (last < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(last, size - 1) };
}

/** `length` bytes of `file` from `start`, closing the file at the end or on cancel. */
function fileSlice(file: Deno.FsFile, start: number, length: number): ReadableStream<Uint8Array> {
  let left = length;
  let positioned = false;
  let closed = false;
  const close = () => {
    if (!closed) file.close();
    closed = true;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (!positioned) {
          await file.seek(start, Deno.SeekMode.Start);
          positioned = true;
        }
        const chunk = new Uint8Array(Math.min(left, SLICE_CHUNK_BYTES));
        const read = await file.read(chunk);
        if (read === null) throw new Error("The result file ended before the range did");
        left -= read;
        controller.enqueue(chunk.subarray(0, read));
        if (left === 0) {
          close();
          controller.close();
        }
      } catch (error) {
        close();
        controller.error(error);
      }
    },
    cancel: close,
  });
}

/** Bytes read from the file per piece of a range's body. */
const SLICE_CHUNK_BYTES = 64 * 1024;

function safeMessage(error: AppError): string {
  return error.code === Status.INTERNAL || error.code === Status.UNKNOWN
    ? "Internal server error"
    : error.message;
}
