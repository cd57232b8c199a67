/**
 * Gzip for the page's uploads, one member per chunk: each slice of the file becomes a complete
 * gzip member, either deflated with `CompressionStream("gzip")` or "stored" (deflate's
 * uncompressed block type, built here with a CRC-32). A gzip stream may hold any number of
 * members back to back, and the service reads them as one file; independent members let slices be
 * compressed in parallel and let a retried chunk repeat exactly the same bytes.
 *
 * @example
 * ```ts
 * import { storedGzipMember } from "./gzip_members.ts";
 *
 * const member = await storedGzipMember(new Blob(["Department Name,Date,Number of Sales\n"]));
 * const text = await new Response(member.stream().pipeThrough(new DecompressionStream("gzip")))
 *   .text();
 * if (text !== "Department Name,Date,Number of Sales\n") throw new Error(text);
 * ```
 *
 * @module
 */

/** Whether `file` starts with the gzip magic bytes (1f 8b). */
export async function isGzip(file: Blob): Promise<boolean> {
  const head = new Uint8Array(await file.slice(0, 2).arrayBuffer());
  return head.length === 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** Deflate's stored blocks carry at most this many bytes each (a 16-bit length). */
const STORED_BLOCK_BYTES = 65_535;
/** Gzip header (10 bytes) and trailer (CRC-32 and length, 8 bytes). */
const MEMBER_FRAMING_BYTES = 18;

/** Bytes a stored member of `bytes` bytes adds around them. */
export function storedOverhead(bytes: number): number {
  return MEMBER_FRAMING_BYTES + 5 * Math.max(1, Math.ceil(bytes / STORED_BLOCK_BYTES));
}

/** The largest slice whose stored member fits in `chunkBytes`. */
export function pieceBytesFor(chunkBytes: number): number {
  let piece = chunkBytes - storedOverhead(chunkBytes);
  while (piece + 1 + storedOverhead(piece + 1) <= chunkBytes) piece++;
  if (piece < 1) throw new RangeError(`A chunk of ${chunkBytes} bytes cannot hold a gzip member`);
  return piece;
}

/**
 * `piece` as a gzip member of stored blocks: no compression, so it costs one CRC-32 pass and the
 * bytes travel as the original Blob slices (never copied into a new buffer).
 */
export async function storedGzipMember(piece: Blob): Promise<Blob> {
  const crc = crc32(new Uint8Array(await piece.arrayBuffer()));
  const parts: BlobPart[] = [
    // Magic, deflate, no flags, no mtime, no extra flags, OS unknown.
    new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]),
  ];
  let offset = 0;
  do {
    const length = Math.min(STORED_BLOCK_BYTES, piece.size - offset);
    const last = offset + length === piece.size;
    // BFINAL then BTYPE 00 (stored), padded to the byte; then LEN and its complement, little-endian.
    parts.push(
      new Uint8Array([
        last ? 1 : 0,
        length & 0xff,
        length >>> 8,
        ~length & 0xff,
        (~length >>> 8) & 0xff,
      ]),
      piece.slice(offset, offset + length),
    );
    offset += length;
  } while (offset < piece.size);
  const trailer = new Uint8Array(8);
  const view = new DataView(trailer.buffer);
  view.setUint32(0, crc, true);
  view.setUint32(4, piece.size % 2 ** 32, true);
  parts.push(trailer);
  return new Blob(parts);
}

/** `piece` deflated by the platform's `CompressionStream("gzip")`, as one complete member. */
export function deflatedGzipMember(piece: Blob): Promise<Blob> {
  return new Response(piece.stream().pipeThrough(new CompressionStream("gzip"))).blob();
}

/** Slicing-by-8 tables: eight bytes per step instead of one (about 4x faster in V8). */
const CRC_TABLES = (() => {
  const tables = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    tables[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let t = 1; t < 8; t++) {
      const previous = tables[(t - 1) * 256 + n];
      tables[t * 256 + n] = tables[previous & 0xff] ^ (previous >>> 8);
    }
  }
  return tables;
})();

/** The CRC-32 of `bytes` (gzip's, ISO 3309), continuing from `crc` (that of the bytes before). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  const t = CRC_TABLES;
  let c = ~crc;
  let i = 0;
  const end8 = bytes.length - (bytes.length % 8);
  while (i < end8) {
    const low = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c = t[1792 + (low & 0xff)] ^ t[1536 + ((low >>> 8) & 0xff)] ^
      t[1280 + ((low >>> 16) & 0xff)] ^ t[1024 + (low >>> 24)] ^
      t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^ t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
    i += 8;
  }
  while (i < bytes.length) c = t[(c ^ bytes[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Compresses slices into gzip members, possibly several at once. */
export interface MemberCompressor {
  /** How many slices it compresses at once. */
  readonly parallelism: number;
  /** `piece` as a deflated gzip member. */
  compress(piece: Blob): Promise<Blob>;
  /** Stops its workers; pending compressions reject. */
  close(): void;
}

/** Compresses on the calling thread, one slice at a time (where workers are not available). */
export function inlineCompressor(): MemberCompressor {
  return { parallelism: 1, compress: deflatedGzipMember, close() {} };
}

/** The name our compression workers get, so the module knows when it runs as one. */
const WORKER_NAME = "sales-gzip-members";

/**
 * Compresses in `workers` dedicated workers. `CompressionStream` runs zlib on the thread that
 * feeds it (about 25 MB/s in Chromium), so parallel slices are the only way to go faster. Each
 * worker loads the module it was started from (the page's island bundle, a same-origin script as
 * the Content-Security-Policy requires), which stops at the check at the end of this file.
 * Returns undefined where workers cannot start.
 */
export function workerCompressor(workers: number, scriptUrl: string): MemberCompressor | undefined {
  if (typeof Worker !== "function" || workers < 1) return undefined;
  const pool: Worker[] = [];
  try {
    for (let i = 0; i < workers; i++) {
      pool.push(new Worker(scriptUrl, { type: "module", name: WORKER_NAME }));
    }
  } catch {
    for (const worker of pool) worker.terminate();
    return undefined;
  }
  const idle = [...pool];
  const waiting: ((worker: Worker) => void)[] = [];
  const failures = new Set<(error: Error) => void>();
  let closed = false;
  const release = (worker: Worker) => {
    const next = waiting.shift();
    if (next) next(worker);
    else idle.push(worker);
  };
  return {
    parallelism: workers,
    async compress(piece) {
      if (closed) throw new Error("The compressor is closed");
      const worker = idle.pop() ?? await new Promise<Worker>((resolve) => waiting.push(resolve));
      try {
        return await new Promise<Blob>((resolve, reject) => {
          const fail = (error: Error) => {
            failures.delete(fail);
            reject(error);
          };
          failures.add(fail);
          worker.onmessage = (event: MessageEvent<{ member?: Blob; error?: string }>) => {
            failures.delete(fail);
            if (event.data.member) resolve(event.data.member);
            else reject(new Error(event.data.error ?? "Compression failed"));
          };
          worker.onerror = (event) => {
            // The bundle's own start-up may report errors that are not about this job.
            event.preventDefault();
          };
          worker.postMessage(piece);
        });
      } finally {
        if (!closed) release(worker);
      }
    },
    close() {
      closed = true;
      for (const worker of pool) worker.terminate();
      for (const fail of failures) fail(new Error("The compressor is closed"));
    },
  };
}

/** Whether this module runs inside one of {@linkcode workerCompressor}'s workers. */
function isCompressionWorker(): boolean {
  // deno-lint-ignore no-explicit-any
  const scope = globalThis as any;
  return typeof scope.WorkerGlobalScope === "function" &&
    scope instanceof scope.WorkerGlobalScope && scope.name === WORKER_NAME;
}

if (isCompressionWorker()) {
  globalThis.onmessage = async (event: MessageEvent<Blob>) => {
    try {
      globalThis.postMessage({ member: await deflatedGzipMember(event.data) });
    } catch (error) {
      globalThis.postMessage({ error: String(error) });
    }
  };
  // Never settles: the rest of the bundle (which hydrates the page) must not run in a worker, and
  // messages are still delivered while a module waits at the top level.
  await new Promise(() => {});
}
