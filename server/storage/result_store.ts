/**
 * Result CSV files under `<storage dir>/results/`, one `<result id>.csv` each. A result is written
 * to a temp file in the same folder, flushed to disk, renamed into place and the folder flushed,
 * so a crash leaves either the whole file or none, and an id is handed out only after that.
 * Temp files a crash left behind are removed by {@linkcode ResultStore.open}.
 *
 * @example
 * ```ts
 * import { ResultStore } from "./result_store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = await ResultStore.open(dir);
 * const resultId = await store.save("Department Name,Total Number of Sales\nToys,7\n");
 * const bytes = await store.read(resultId);
 * if (new TextDecoder().decode(bytes) !== "Department Name,Total Number of Sales\nToys,7\n") {
 *   throw new Error("round trip failed");
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { resolve } from "node:path";
import { AppError, Status } from "../errors.ts";
import { newResultId, parseResultId } from "./result_id.ts";

/** Names of in-progress writes start with this; nothing else in the folder does. */
const TEMP_PREFIX = ".tmp-";
/** A finished result's file name. */
const RESULT_FILE = /^([0-9a-f]{32})\.csv$/;

/** An open result file with what HTTP caching needs. The caller closes `file`. */
export interface OpenResult {
  file: Deno.FsFile;
  size: number;
  modified: Date;
}

/** The results folder: atomic writes, lookups by id, deletion. */
export class ResultStore {
  /** Temp files removed when the store was opened (left by a crash mid-write). */
  removedTempFiles = 0;

  private constructor(
    /** Absolute path of the results folder. */
    readonly dir: string,
  ) {}

  /** Creates `<storageDir>/results/` when missing and removes leftover temp files. */
  static async open(storageDir: string): Promise<ResultStore> {
    const store = new ResultStore(resolve(storageDir, "results"));
    await Deno.mkdir(store.dir, { recursive: true });
    for await (const entry of Deno.readDir(store.dir)) {
      if (entry.isFile && entry.name.startsWith(TEMP_PREFIX)) {
        await Deno.remove(`${store.dir}/${entry.name}`).catch(ignoreNotFound);
        store.removedTempFiles++;
      }
    }
    return store;
  }

  /**
   * Writes a result atomically and durably, then returns its new id. When the storage is full
   * (`RESOURCE_EXHAUSTED`) or the folder is not writable (`FAILED_PRECONDITION`), nothing is left.
   */
  async save(csv: string): Promise<string> {
    const resultId = newResultId();
    const tempPath = `${this.dir}/${TEMP_PREFIX}${resultId}`;
    try {
      const file = await Deno.open(tempPath, { write: true, createNew: true, mode: 0o644 });
      try {
        await writeAll(file, new TextEncoder().encode(csv));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(tempPath, this.pathOf(resultId));
      await syncDirectory(this.dir);
    } catch (error) {
      // Best effort: a failed cleanup must not hide why the save failed; start-up removes leftovers.
      await Deno.remove(tempPath).catch(() => {});
      throw saveError(error);
    }
    return resultId;
  }

  /** The bytes of a result. Throws `INVALID_ARGUMENT` for a malformed id, `NOT_FOUND` for an unknown one. */
  async read(resultId: string): Promise<Uint8Array> {
    const path = this.pathOf(parseResultId(resultId));
    try {
      return await Deno.readFile(path);
    } catch (error) {
      throw lookupError(error, resultId);
    }
  }

  /** Opens a result for streaming, with its size and modification time. Same errors as {@linkcode read}. */
  async openResult(resultId: string): Promise<OpenResult> {
    const path = this.pathOf(parseResultId(resultId));
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      throw lookupError(error, resultId);
    }
    try {
      const info = await file.stat();
      return { file, size: info.size, modified: info.mtime ?? new Date(0) };
    } catch (error) {
      file.close();
      throw storageError(error);
    }
  }

  /** Deletes a result; deleting an unknown one is not an error. */
  async delete(resultId: string): Promise<void> {
    await Deno.remove(this.pathOf(parseResultId(resultId))).catch(ignoreNotFound);
  }

  /**
   * Deletes the results last modified more than `maxAgeMs` before `now` (`RESULT_TTL_HOURS`) and
   * returns how many. Writes in progress (temp files) are left alone; a download already under way
   * keeps reading the deleted file until it ends.
   */
  async sweep(maxAgeMs: number, now: number = Date.now()): Promise<number> {
    let deleted = 0;
    for await (const entry of Deno.readDir(this.dir)) {
      const match = RESULT_FILE.exec(entry.name);
      if (!entry.isFile || match === null) continue;
      const path = this.pathOf(match[1]);
      let modified: Date | null;
      try {
        modified = (await Deno.stat(path)).mtime;
      } catch (error) {
        ignoreNotFound(error);
        continue;
      }
      if (modified !== null && now - modified.getTime() > maxAgeMs) {
        await Deno.remove(path).catch(ignoreNotFound);
        deleted++;
      }
    }
    return deleted;
  }

  private pathOf(resultId: string): string {
    return `${this.dir}/${resultId}.csv`;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await file.write(bytes.subarray(written));
  }
}

/** Makes a rename durable: the new directory entry is on disk only once the folder is flushed. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}

function lookupError(error: unknown, resultId: string): AppError {
  if (error instanceof Deno.errors.NotFound) {
    return new AppError(Status.NOT_FOUND, `Result ${resultId} not found`);
  }
  return storageError(error);
}

/**
 * Why a save failed, for the user: a full storage (RESOURCE_EXHAUSTED) and a folder that cannot be
 * written (FAILED_PRECONDITION: no retry helps until someone fixes it) each get a clear message.
 * Both are logged here with the path, for the operator: the edges log only INTERNAL errors.
 */
function saveError(error: unknown): AppError {
  const code = (error as { code?: string }).code;
  let appError: AppError;
  if (code === "ENOSPC" || code === "EDQUOT") {
    appError = new AppError(
      Status.RESOURCE_EXHAUSTED,
      "Cannot store the result: the storage is full",
      { cause: error },
    );
  } else if (code === "EROFS" || code === "EACCES" || code === "EPERM") {
    appError = new AppError(
      Status.FAILED_PRECONDITION,
      "Cannot store the result: the results folder is not writable",
      { cause: error },
    );
  } else {
    return storageError(error);
  }
  console.error(`[storage] ${appError.message}: ${(error as Error).message}`);
  return appError;
}

function storageError(error: unknown): AppError {
  const code = (error as { code?: string }).code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new AppError(Status.RESOURCE_EXHAUSTED, "Cannot store the result: the storage is full", {
      cause: error,
    });
  }
  return new AppError(Status.INTERNAL, "Cannot access result storage", { cause: error });
}
