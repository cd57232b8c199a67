/**
 * Inputs the benchmarks derive from the generated files, cached beside them in `.cache/bench/`:
 * a gzip copy of a CSV (`gzip -6`, as exports usually come), and the file of 1,000,000 distinct
 * departments of the hostile corpus.
 *
 * @module
 */

import { createGzip } from "node:zlib";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { distinctDepartments } from "../server/_test_hostile_cases.ts";
import { CACHE_DIR } from "./generate_sales_csv.ts";

/** `<path>.gz`, compressed at level 6, made once and reused while newer than `path`. */
export async function ensureGzipCopy(path: string): Promise<string> {
  const gzPath = `${path}.gz`;
  const source = await Deno.stat(path);
  try {
    const copy = await Deno.stat(gzPath);
    if ((copy.mtime?.getTime() ?? 0) >= (source.mtime?.getTime() ?? Infinity)) return gzPath;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const temp = `${gzPath}.tmp-${Deno.pid}`;
  {
    using input = await Deno.open(path, { read: true });
    using output = await Deno.open(temp, { write: true, create: true, truncate: true });
    await pipeline(
      Readable.fromWeb(input.readable as never),
      createGzip({ level: 6 }),
      Writable.fromWeb(output.writable as never),
    );
  }
  await Deno.rename(temp, gzPath);
  return gzPath;
}

/** The hostile corpus's file of `count` distinct departments, one row each. */
export async function ensureDepartmentsCsv(count: number): Promise<string> {
  const path = decodeURIComponent(new URL(`departments-${count}.csv`, CACHE_DIR).pathname);
  const input = distinctDepartments(count);
  try {
    if ((await Deno.stat(path)).size === input.size) return path;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(CACHE_DIR, { recursive: true });
  const temp = `${path}.tmp-${Deno.pid}`;
  {
    using file = await Deno.open(temp, { write: true, create: true, truncate: true });
    for (const chunk of input.chunks()) {
      for (let written = 0; written < chunk.length;) {
        written += await file.write(chunk.subarray(written));
      }
    }
  }
  await Deno.rename(temp, path);
  return path;
}
