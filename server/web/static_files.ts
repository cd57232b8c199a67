/**
 * Static assets from one folder: correct content types, ETags with conditional GET, and cache
 * headers by kind: content-hashed bundle files are immutable; everything else is revalidated on
 * each use. Paths are checked before any file is opened, so
 * nothing outside the folder, no hidden file and no listing is ever served.
 *
 * @module
 */

/** Content types by file extension; anything else is `application/octet-stream`. */
const CONTENT_TYPES: Record<string, string> = {
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".ico": "image/x-icon",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".txt": "text/plain; charset=utf-8",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
};

/** Cache-Control for hashed bundle files: they never change under the same name. */
export const IMMUTABLE = "public, max-age=31536000, immutable";
/** Cache-Control for other assets: keep a copy, but ask (cheaply, by ETag) before each use. */
export const REVALIDATE = "public, no-cache";

/** The content type for a file name, by its extension. */
export function contentTypeOf(name: string): string {
  const dot = name.lastIndexOf(".");
  return CONTENT_TYPES[dot < 0 ? "" : name.slice(dot).toLowerCase()] ?? "application/octet-stream";
}

/** True for a relative path made of plain segments: no `..`, no hidden files, no odd bytes. */
export function isSafeAssetPath(path: string): boolean {
  if (path === "" || path.length > 200) return false;
  return path.split("/").every((segment) => /^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$/.test(segment));
}

async function etagOf(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `"${Array.from(digest.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join("")}"`;
}

/**
 * Serves `path` (relative, from the URL) out of `root`, or answers 404. `request` supplies the
 * method (GET or HEAD) and `If-None-Match`; `immutable` is for content-hashed file names.
 */
export async function serveStaticFile(
  request: Request,
  root: URL,
  path: string,
  options: { immutable?: boolean } = {},
): Promise<Response> {
  if (!isSafeAssetPath(path)) return notFound();
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(new URL(path, root));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory) {
      return notFound();
    }
    // Reading a directory fails with a generic error on some platforms.
    if ((error as { code?: string }).code === "EISDIR") return notFound();
    throw error;
  }
  const etag = await etagOf(bytes);
  const headers = new Headers({
    "content-type": contentTypeOf(path),
    "cache-control": options.immutable ? IMMUTABLE : REVALIDATE,
    etag,
    "x-content-type-options": "nosniff",
  });
  const ifNoneMatch = request.headers.get("if-none-match");
  if (ifNoneMatch !== null && ifNoneMatch.split(",").some((tag) => tag.trim() === etag)) {
    return new Response(null, { status: 304, headers });
  }
  if (request.method === "HEAD") {
    headers.set("content-length", String(bytes.length));
    return new Response(null, { status: 200, headers });
  }
  // No explicit length for GET: Deno.serve sets it, or drops it when it compresses the body.
  return new Response(bytes, { status: 200, headers });
}

function notFound(): Response {
  return new Response("Not found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" },
  });
}
