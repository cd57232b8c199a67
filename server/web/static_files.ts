/**
 * Static assets from one folder: correct content types, ETags with conditional GET, and cache
 * headers by kind: content-hashed bundle files are immutable; everything else is revalidated on
 * each use. Paths are checked before any file is opened, so
 * nothing outside the folder, no hidden file and no listing is ever served.
 *
 * @module
 */

import { brotliCompressSync, constants as zlibConstants, gzipSync } from "node:zlib";
import { sha256Hex } from "../storage/hex.ts";
import { evaluatePreconditions, notModifiedResponse } from "./conditional_get.ts";

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

/** 96 bits of the content's SHA-256: plenty to tell versions of one asset apart. */
async function etagOf(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return (await sha256Hex(bytes)).slice(0, 24);
}

/** Text types worth compressing; images other than SVG and fonts are compressed already. */
const COMPRESSIBLE = /^(text\/|application\/json|image\/svg\+xml)/;
/** Smaller bodies gain too little from compression to be worth it. */
const COMPRESS_MIN_BYTES = 1024;
/** Compressed bodies by encoding and content hash; the asset folder is small and fixed. */
const compressedCache = new Map<string, Uint8Array<ArrayBuffer>>();
const COMPRESSED_CACHE_ENTRIES = 64;

/** The encoding to answer with: brotli, else gzip, else none (Deno.serve does not compress). */
function chooseEncoding(request: Request): "br" | "gzip" | undefined {
  const accepted = (request.headers.get("accept-encoding") ?? "").toLowerCase();
  const accepts = (name: string) =>
    accepted.split(",").some((part) => {
      const [coding, ...params] = part.trim().split(";");
      return coding.trim() === name && !params.some((p) => /^\s*q=0(\.0*)?\s*$/.test(p));
    });
  if (accepts("br")) return "br";
  if (accepts("gzip")) return "gzip";
  return undefined;
}

function compress(
  bytes: Uint8Array<ArrayBuffer>,
  encoding: "br" | "gzip",
  hash: string,
): Uint8Array<ArrayBuffer> {
  const key = `${encoding}:${hash}`;
  let compressed = compressedCache.get(key);
  if (compressed === undefined) {
    const out = encoding === "br"
      ? brotliCompressSync(bytes, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11 } })
      : gzipSync(bytes, { level: 9 });
    compressed = new Uint8Array(out);
    if (compressedCache.size >= COMPRESSED_CACHE_ENTRIES) compressedCache.clear();
    compressedCache.set(key, compressed);
  }
  return compressed;
}

/**
 * Serves `path` (relative, from the URL) out of `root`, or answers 404. `request` supplies the
 * method (GET or HEAD), the conditional headers (`conditional_get.ts`) and `Accept-Encoding`; `immutable` is for
 * content-hashed file names. Text assets are sent brotli- or gzip-compressed when accepted (each
 * compressed once, then cached), with an ETag per encoding.
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
  const hash = await etagOf(bytes);
  const contentType = contentTypeOf(path);
  const compressible = COMPRESSIBLE.test(contentType) && bytes.length >= COMPRESS_MIN_BYTES;
  const encoding = compressible ? chooseEncoding(request) : undefined;
  const etag = `"${hash}${encoding ? `-${encoding}` : ""}"`;
  const headers = new Headers({
    "content-type": contentType,
    "cache-control": options.immutable ? IMMUTABLE : REVALIDATE,
    etag,
    "x-content-type-options": "nosniff",
  });
  if (compressible) headers.set("vary", "Accept-Encoding");
  // Assets have no Last-Modified: their ETag, a content hash, is the only validator.
  const precondition = evaluatePreconditions(request.headers, { etag });
  if (precondition === 412) {
    return new Response("Precondition failed: the asset does not match If-Match\n", {
      status: 412,
      headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" },
    });
  }
  if (precondition === 304) return notModifiedResponse(headers);
  const body = encoding ? compress(bytes, encoding, hash) : bytes;
  if (encoding) headers.set("content-encoding", encoding);
  headers.set("content-length", String(body.length));
  return new Response(request.method === "HEAD" ? null : body, { status: 200, headers });
}

function notFound(): Response {
  return new Response("Not found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" },
  });
}
