/**
 * The page's copy of the access token (`SALES_API_TOKEN` on the server): kept in `sessionStorage`,
 * so it lasts as long as the tab and is never written to disk by the page, and sent as
 * `authorization: Bearer <token>` on every gRPC-Web call. The page does not know in advance
 * whether the server wants a token; it asks when a call is refused with `UNAUTHENTICATED`.
 *
 * @example
 * ```ts
 * import { authorizationHeaders, memoryTokenStore, normalizeToken } from "./access_token.ts";
 * const tokens = memoryTokenStore();
 * const typed = normalizeToken("  Bearer abc123 ");
 * if (!("token" in typed) || typed.token !== "abc123") throw new Error("expected the bare token");
 * tokens.set(typed.token);
 * if (authorizationHeaders(tokens.get()).authorization !== "Bearer abc123") throw new Error();
 * ```
 *
 * @module
 */

/** Where the page keeps the token. */
export interface TokenStore {
  get(): string | undefined;
  set(token: string): void;
  clear(): void;
}

/** The `sessionStorage` key; one per origin, like the storage itself. */
export const TOKEN_STORAGE_KEY = "sales-aggregator.access-token";

/**
 * The token in `storage` (default: this tab's `sessionStorage`). Storage can be missing or refuse
 * writes (private modes, sandboxed frames): the token then lives in memory until the page closes.
 */
export function sessionTokenStore(storage?: Storage): TokenStore {
  const memory = memoryTokenStore();
  const session = (): Storage | undefined => {
    try {
      return storage ?? globalThis.sessionStorage;
    } catch {
      return undefined;
    }
  };
  return {
    get() {
      try {
        return session()?.getItem(TOKEN_STORAGE_KEY) || memory.get();
      } catch {
        return memory.get();
      }
    },
    set(token) {
      memory.set(token);
      try {
        session()?.setItem(TOKEN_STORAGE_KEY, token);
      } catch {
        // Kept in memory only.
      }
    },
    clear() {
      memory.clear();
      try {
        session()?.removeItem(TOKEN_STORAGE_KEY);
      } catch {
        // Nothing stored.
      }
    },
  };
}

/** A token kept in a variable, for tests and as the fallback of {@linkcode sessionTokenStore}. */
export function memoryTokenStore(): TokenStore {
  let value: string | undefined;
  return {
    get: () => value,
    set: (token) => value = token,
    clear: () => value = undefined,
  };
}

/** The headers that carry `token`; none without one. */
export function authorizationHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * What the person typed as a token: the token to send, or why it cannot be one. Surrounding
 * spaces and a pasted `Bearer ` prefix are dropped; a header value cannot hold anything but
 * visible ASCII, so other characters are refused here rather than by `fetch`.
 */
export function normalizeToken(typed: string): { token: string } | { problem: string } {
  const token = typed.trim().replace(/^Bearer\s+/i, "");
  if (token === "") return { problem: "Enter the access token." };
  if (!/^[\x21-\x7e]+$/.test(token)) {
    return {
      problem: "An access token has only letters, digits and punctuation, without spaces.",
    };
  }
  return { token };
}
