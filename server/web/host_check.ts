/**
 * The `Host` rule both HTTP ports apply before routing. `Deno.serve` builds `request.url` by pasting
 * the `Host` header (or HTTP/2's `:authority`) in front of the request target, unchecked, so a
 * `Host: h/results/<id>.csv?#` turned `GET /anything` into a request for that result, and a `Host`
 * such as `a b` made `new URL(request.url)` throw. {@linkcode createHostCheck} validates the
 * authority strictly (a host name or IP literal with an optional port), answers 400 for a malformed
 * or missing one, optionally 421 for hosts outside `ALLOWED_HOSTS` (DNS rebinding defence), and
 * hands back the request target's path and query, which is all routing may use.
 *
 * @example
 * ```ts
 * import { createHostCheck } from "./host_check.ts";
 *
 * const check = createHostCheck({ allowedHosts: ["sales.example"] });
 * const target = check(new Request("http://sales.example:8080/results/x.csv?e=1"));
 * if (target instanceof Response || target.path !== "/results/x.csv") throw new Error();
 * const refused = check(new Request("http://evil.example/"));
 * if (!(refused instanceof Response) || refused.status !== 421) throw new Error();
 * ```
 *
 * @module
 */

import { isIP } from "node:net";

/** What routing may look at: the request target, never a URL built from `Host`. */
export interface RequestTarget {
  /** The target's path, percent-encoding and dot segments resolved as `URL` does (`*` stays `*`). */
  path: string;
  /** The target's query parameters. */
  searchParams: URLSearchParams;
  /** The host name the request is for, lower case, without the port (IPv6 in brackets). */
  hostname: string;
}

/** Options of {@linkcode createHostCheck}. */
export interface HostCheckOptions {
  /**
   * Host names answered (lower case, no port; IPv6 in brackets); others get 421.
   * @default {[]} (any host)
   */
  allowedHosts?: readonly string[];
}

// RFC 3986 reg-name, restricted to what DNS names and IPv4 addresses use: no sub-delims, no
// percent-encoding, nothing that could end the authority.
const REG_NAME = /^[a-z0-9_~-]+(?:\.[a-z0-9_~-]+)*\.?$/i;
const IP_LITERAL = /^\[([0-9a-f:.]+)\]$/i;
const PORT = /^[0-9]{1,5}$/;

/**
 * Splits `authority` (`host`, `host:port`, `[v6]`, `[v6]:port`) and returns the lower-case host,
 * or undefined when it is not a strictly valid authority.
 */
export function parseHostAuthority(authority: string): string | undefined {
  let host = authority;
  let port: string | undefined;
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    if (end < 0) return undefined;
    host = authority.slice(0, end + 1);
    const rest = authority.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return undefined;
      port = rest.slice(1);
    }
    const literal = IP_LITERAL.exec(host);
    if (literal === null || isIP(literal[1]) !== 6) return undefined;
  } else {
    const colon = authority.indexOf(":");
    if (colon >= 0) {
      host = authority.slice(0, colon);
      port = authority.slice(colon + 1);
    }
    if (!REG_NAME.test(host)) return undefined;
  }
  if (port !== undefined && !(PORT.test(port) && Number(port) <= 65535)) return undefined;
  return host.toLowerCase();
}

/**
 * The authority and target `Deno.serve` put in `request.url`. Only meaningful once the authority
 * is known to hold none of `/`, `?` and `#` (as {@linkcode parseHostAuthority} ensures); requests
 * built in-process have a URL that `URL` already parsed, which is fine as well.
 */
export function splitRequestUrl(url: string): { authority: string; target: string } | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)(.*)$/is.exec(url);
  return match === null ? undefined : { authority: match[1], target: match[2] };
}

/** The path and query of a request target (origin form `/p?q`, or `*`). */
export function parseTarget(target: string): { path: string; searchParams: URLSearchParams } {
  if (!target.startsWith("/")) {
    return { path: target === "" ? "/" : target, searchParams: new URLSearchParams() };
  }
  // A fixed base, concatenated rather than resolved: `//other/x` must stay a path, not a host.
  const url = new URL(`http://target.invalid${target}`);
  return { path: url.pathname, searchParams: url.searchParams };
}

// Deno's stand-in authority when a request carries none (see ext/http request_properties.rs): the
// listener's address, `localhost[:port]` for loopback and wildcard listeners.
const DENO_FALLBACK_AUTHORITY = /^localhost(?::[0-9]+)?$/i;

/**
 * Builds the check: it returns the {@linkcode RequestTarget} to route on, or the response to send
 * (400 for a malformed or missing `Host`, 421 for a host outside `allowedHosts`). Pass the
 * `Deno.serve` handler info when there is one: only then can a missing `Host` be told apart, since
 * requests built in-process carry no `Host` header.
 *
 * A missing `Host` is recognised by the stand-in authority `Deno.serve` then puts in the URL,
 * `localhost[:port]` on the loopback and wildcard addresses this server listens on. An HTTP/2
 * request carries its host in `:authority`, which `Deno.serve` does not expose as a header: one
 * naming `localhost` looks exactly like an HTTP/1.1 request without `Host` and is refused as one.
 * HTTP/2 clients that talk to the server as `localhost` must also send a `host` header.
 */
export function createHostCheck(
  options: HostCheckOptions = {},
): (request: Request, info?: Deno.ServeHandlerInfo) => RequestTarget | Response {
  const allowed = new Set(options.allowedHosts ?? []);
  return (request, info) => {
    const header = request.headers.get("host");
    if (header !== null) {
      if (parseHostAuthority(header.trim()) === undefined) {
        return plainText(
          400,
          "Malformed Host header: expected a host name or IP address, with an optional port",
        );
      }
    }
    const parts = splitRequestUrl(request.url);
    // Deno takes an absolute-form target's or HTTP/2's authority over Host (as RFC 9112 section
    // 3.2.2 says to): that authority is the one checked against the rules.
    const hostname = parts === undefined ? undefined : parseHostAuthority(parts.authority);
    if (parts === undefined || hostname === undefined) {
      return plainText(
        400,
        "Malformed request authority: expected a host name or IP address, with an optional port",
      );
    }
    if (header === null && info !== undefined && DENO_FALLBACK_AUTHORITY.test(parts.authority)) {
      return plainText(
        400,
        "Missing Host header: HTTP/1.1 requests must name the host they are for",
      );
    }
    if (allowed.size > 0 && !allowed.has(hostname)) {
      return plainText(
        421,
        `Misdirected request: this server does not answer for host ${hostname} (ALLOWED_HOSTS)`,
      );
    }
    const { path, searchParams } = parseTarget(parts.target);
    return { path, searchParams, hostname };
  };
}

/** A short plain-text answer, the form every refusal on the HTTP ports takes. */
export function plainText(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(`${message}\n`, {
    status,
    // The text may quote the request (a path, a content type): never let a browser sniff it.
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
      ...headers,
    },
  });
}
