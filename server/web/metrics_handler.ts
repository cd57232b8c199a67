/**
 * `GET /metrics` on the result port: the service's Prometheus text. It follows the results' access
 * rule: open by default; with `METRICS_TOKEN` set, a scrape must carry
 * `authorization: Bearer <METRICS_TOKEN>` or gets 401 with `WWW-Authenticate: Bearer` and the
 * reason as text. The result handler routes here after its `Host` check.
 *
 * @example
 * ```ts
 * import { createMetricsHandler } from "./metrics_handler.ts";
 * const handler = createMetricsHandler({
 *   render: () => Promise.resolve({ contentType: "text/plain", body: "up 1\n" }),
 *   token: "s3cret",
 * });
 * const refused = await handler(new Request("http://localhost/metrics"));
 * if (refused.status !== 401) throw new Error(`status ${refused.status}`);
 * const scraped = await handler(
 *   new Request("http://localhost/metrics", { headers: { authorization: "Bearer s3cret" } }),
 * );
 * if ((await scraped.text()) !== "up 1\n") throw new Error("no metrics");
 * ```
 *
 * @module
 */

import { createSecretMatcher } from "../service/auth.ts";
import type { MetricsText } from "../service/metrics.ts";
import { plainText } from "./host_check.ts";
import { consoleLogger } from "../logger.ts";

/** The path metrics are served at. */
export const METRICS_PATH = "/metrics";

/** Options of {@linkcode createMetricsHandler}. */
export interface MetricsHandlerOptions {
  /** Renders the metrics now (`SalesMetrics.render`). */
  render: () => Promise<MetricsText>;
  /** The bearer token a scrape must carry (`METRICS_TOKEN`). @default {undefined} (open) */
  token?: string;
  /** Called with unexpected errors before a generic 500 is sent. @default {consoleLogger.error} */
  logError?: (message: string, error: unknown) => void;
}

/** Builds the handler for `/metrics`; the caller has checked `Host` and the path. */
export function createMetricsHandler(
  options: MetricsHandlerOptions,
): (request: Request) => Promise<Response> {
  const logError = options.logError ?? ((message, error) => consoleLogger.error(message, error));
  const matches = options.token === undefined || options.token === ""
    ? undefined
    : createSecretMatcher(options.token);

  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return plainText(405, `Method ${request.method} not allowed for ${METRICS_PATH}`, {
        Allow: "GET, HEAD",
      });
    }
    if (matches !== undefined) {
      const refusal = refusalOf(request.headers.get("authorization"), matches);
      if (refusal !== undefined) {
        return plainText(401, refusal.message, { "WWW-Authenticate": refusal.challenge });
      }
    }
    let metrics: MetricsText;
    try {
      metrics = await options.render();
    } catch (error) {
      logError("Cannot render the metrics:", error);
      return plainText(500, "Internal server error");
    }
    return new Response(request.method === "HEAD" ? null : metrics.body, {
      status: 200,
      headers: {
        "content-type": metrics.contentType,
        // Every scrape must see the figures of now, never a cached copy.
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  };
}

/** Why `authorization` does not open the metrics, and the challenge to send; undefined when it does. */
function refusalOf(
  authorization: string | null,
  matches: (candidate: string) => boolean,
): { message: string; challenge: string } | undefined {
  const value = authorization?.trim() ?? "";
  if (value === "") {
    return {
      message:
        "Metrics require a token on this server: send the header authorization: Bearer <METRICS_TOKEN>",
      challenge: 'Bearer realm="metrics"',
    };
  }
  const match = /^Bearer +(\S+)$/i.exec(value);
  if (match === null) {
    return {
      message: "Malformed authorization header: expected Bearer <METRICS_TOKEN>",
      challenge: 'Bearer realm="metrics", error="invalid_request"',
    };
  }
  if (!matches(match[1])) {
    return {
      message: "The metrics token is not valid",
      challenge: 'Bearer realm="metrics", error="invalid_token"',
    };
  }
  return undefined;
}
