/**
 * The result file server: `GET`/`HEAD /results/<result id>.csv`, with `ETag` and conditional
 * requests. Only files named by a well-formed id are served; there is no listing and nothing else
 * in the folder is reachable.
 *
 * A request is judged in this order: a malformed or missing `Host` 400 and a host outside
 * `allowedHosts` 421 (see {@linkcode createHostCheck}), unknown path 404, method 405 (with `Allow`),
 * malformed file name 400, then,
 * when download URLs are signed, a missing, invalid or expired signature 403 (with the reason as
 * text), and only then an unknown result 404.
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
import type { DownloadUrls } from "../service/download_url.ts";
import type { ResultStore } from "../storage/result_store.ts";
import { createHostCheck, plainText } from "./host_check.ts";

/** Options of {@linkcode createResultsHandler}. */
export interface ResultsHandlerOptions {
  /** Where the results live. */
  store: ResultStore;
  /**
   * Checks download URLs; when it signs them (`SALES_URL_SECRET`), a request without a valid,
   * unexpired signature is refused with 403 before the result is looked up, so a refusal never
   * reveals whether a result exists. @default {no check: anyone with the URL may download}
   */
  downloadUrls?: Pick<DownloadUrls, "verify">;
  /** Host names answered (`ALLOWED_HOSTS`); others get 421. @default {[]} (any host) */
  allowedHosts?: readonly string[];
  /** Called with unexpected errors before a generic 500 is sent. @default {console.error} */
  logError?: (message: string, error: unknown) => void;
}

const PREFIX = "/results/";
const RESULT_FILE = /^([0-9a-f]{32})\.csv$/;

/** Builds the `Deno.serve` handler for result downloads. */
export function createResultsHandler(
  options: ResultsHandlerOptions,
): (request: Request, info?: Deno.ServeHandlerInfo) => Promise<Response> {
  const { store } = options;
  const logError = options.logError ?? ((message, error) => console.error(message, error));
  const checkHost = createHostCheck({ allowedHosts: options.allowedHosts });

  return async (request, info) => {
    // Routing and the signature read the request target only, never a URL built from Host.
    const target = checkHost(request, info);
    if (target instanceof Response) return target;
    const { path: pathname, searchParams } = target;
    if (!pathname.startsWith(PREFIX) || pathname === PREFIX) {
      return plainText(404, "Not found");
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return plainText(405, `Method ${request.method} not allowed for ${pathname}`, {
        Allow: "GET, HEAD",
      });
    }
    const match = RESULT_FILE.exec(pathname.slice(PREFIX.length));
    if (match === null) {
      return plainText(400, "Malformed result file name: expected <32 lowercase hex>.csv");
    }
    const resultId = match[1];
    const refusal = options.downloadUrls?.verify(resultId, searchParams);
    if (refusal !== undefined) return plainText(403, refusal);

    let opened;
    try {
      opened = await store.openResult(resultId);
    } catch (error) {
      const appError = toAppError(error);
      if (appError.code === Status.NOT_FOUND) return plainText(404, "Result not found");
      logError(`Cannot serve result ${resultId}:`, appError.cause ?? appError);
      return plainText(httpStatusOf(appError.code), safeMessage(appError));
    }

    // Results never change once written, so id and size identify the bytes; this survives restarts.
    const etag = `"${resultId}-${opened.size.toString(16)}"`;
    const headers = new Headers({
      "Cache-Control": "private, no-cache",
      "ETag": etag,
      "Last-Modified": opened.modified.toUTCString(),
    });
    if (notModified(request.headers, etag, opened.modified)) {
      opened.file.close();
      return new Response(null, { status: 304, headers });
    }
    headers.set("Content-Type", "text/csv; charset=utf-8");
    headers.set("Content-Disposition", `attachment; filename="${resultId}.csv"`);
    headers.set("Content-Length", String(opened.size));
    headers.set("X-Content-Type-Options", "nosniff");
    if (request.method === "HEAD") {
      opened.file.close();
      return new Response(null, { status: 200, headers });
    }
    return new Response(opened.file.readable, { status: 200, headers });
  };
}

/** RFC 9110 section 13.1: If-None-Match (weak comparison) wins over If-Modified-Since. */
function notModified(headers: Headers, etag: string, modified: Date): boolean {
  const ifNoneMatch = headers.get("If-None-Match");
  if (ifNoneMatch !== null) {
    if (ifNoneMatch.trim() === "*") return true;
    return ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
  }
  const ifModifiedSince = headers.get("If-Modified-Since");
  if (ifModifiedSince !== null) {
    const since = Date.parse(ifModifiedSince);
    // HTTP dates have whole seconds; compare at that precision.
    return !Number.isNaN(since) && Math.floor(modified.getTime() / 1000) * 1000 <= since;
  }
  return false;
}

function safeMessage(error: AppError): string {
  return error.code === Status.INTERNAL || error.code === Status.UNKNOWN
    ? "Internal server error"
    : error.message;
}
