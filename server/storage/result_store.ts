/**
 * Result CSV files under `<storage dir>/results/`, one `<result id>.csv` each. A result is written
 * to a temp file in the same folder, flushed to disk, renamed into place and the folder flushed,
 * so a crash leaves either the whole file or none, and an id is handed out only after that.
 *
 * Several replicas may share the folder (`STORAGE_DIR` on NFS, EFS, a ReadWriteMany volume). Each
 * names its temp files `.tmp-<result id>-<replica id>`, so {@linkcode ResultStore.open} can remove
 * what this replica left behind in a crash without touching another replica's write in progress.
 * A temp file of another replica is removed only once it has not been written to for
 * {@linkcode STALE_TEMP_MS}, far longer than any write (a write in progress keeps its time
 * fresh). Every replica serves every result, and {@linkcode ResultStore.sweep} may run on all of
 * them at once: it only ever deletes finished results, and a file another replica deleted first
 * is not an error.
 *
 * Beside each result, `<result id>.json` keeps its metadata ({@linkcode ResultMeta}: the uploaded
 * file's name, when it was stored, its counts), written the same atomic way under its own temp name
 * (`.tmp-<result id>.json-<replica id>`) and renamed into place just before the CSV, so a result
 * that can be found has its metadata. Results stored before metadata was kept have none, and
 * {@linkcode ResultStore.readMeta} then says so; they are served with defaults. Sweeps and
 * deletions remove both files. The metadata may also keep the result's largest departments and
 * its grand total ({@linkcode LargestDepartments}), so that showing a result of a million
 * departments reads a few kilobytes, not its whole CSV.
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
import { consoleLogger, type Logger } from "../logger.ts";
import { newResultId, parseResultId, RANDOM_ID_SOURCE } from "./result_id.ts";

/** Names of in-progress writes start with this; nothing else in the folder does. */
const TEMP_PREFIX = ".tmp-";
/**
 * `.tmp-<result id>-<replica id>` (CSV) and `.tmp-<result id>.json-<replica id>` (metadata); older
 * versions wrote `.tmp-<result id>` (no replica).
 */
const TEMP_FILE = new RegExp(`^\\.tmp-${RANDOM_ID_SOURCE}(?:\\.json)?(?:-(.+))?$`);
/**
 * Age after which another replica's temp file is taken for a crash's leftover: an hour without a
 * write, when a result of a million departments takes seconds to write even on slow NFS.
 */
export const STALE_TEMP_MS = 3_600_000;
/** A finished result's file name, or its metadata's. */
const RESULT_FILE = new RegExp(`^(${RANDOM_ID_SOURCE})\\.(csv|json)$`);
/** The version of the metadata file's layout, written into it. */
const META_VERSION = 1;
/**
 * Bytes of the largest departments' JSON kept in a metadata file at most: a thousand names of
 * ordinary length take some 30 kB, but a name may be a whole record (a megabyte). Past this the
 * metadata keeps none, and a result page reads the CSV instead.
 */
export const MAX_LARGEST_JSON_BYTES = 1024 * 1024;
/**
 * Bytes of a metadata file read at most. The largest the service writes is about 7.5 MB: 1000
 * files (`MAX_UPLOAD_FILES`) of 1024-character names, each character a 6-byte JSON escape at
 * worst, 20 bad-row samples, and {@linkcode MAX_LARGEST_JSON_BYTES} of largest departments.
 */
const MAX_META_BYTES = 10 * 1024 * 1024;

/** One bad row kept in a result's metadata. */
export interface ResultBadRow {
  /** 1-based line where the record starts in its file. */
  line: number;
  /** A short reason, such as `invalid date`. */
  reason: string;
  /** The record's first characters. */
  raw: string;
  /** The name of the file the row is in (`""` when unnamed). */
  file: string;
  /** The 0-based position of that file in the upload. */
  fileIndex: number;
}

/** One uploaded file of a result and its own counts. */
export interface ResultFile {
  /** The file's name as the client gave it; may be empty. */
  name: string;
  /** Rows read from this file, good and bad. */
  rows: number;
  /** Rows of this file refused. */
  badRows: number;
  /** Distinct departments with a good row in this file. */
  departments: number;
}

/** A result's largest departments and its grand total, as its metadata keeps them. */
export interface LargestDepartments {
  /**
   * The largest departments, largest first (equal totals in the CSV's order), each as
   * `[name, total as decimal text]`; the name is the department's own, without the CSV's
   * spreadsheet-safe `'` prefix.
   */
  departments: [string, string][];
  /** The sum of every department's total (not only of these), as decimal text. */
  totalSales: string;
}

/** What is kept beside a result: where it came from and what it counted. */
export interface ResultMeta {
  /** The (first) uploaded file's name as the client gave it; may be empty. */
  filename: string;
  /** When the result was stored. */
  createdAt: Date;
  /** Rows read, good and bad. */
  rows: number;
  /** Rows refused. */
  badRows: number;
  /** Departments in the result. */
  departments: number;
  /** The first bad rows in file order. */
  badRowSamples: ResultBadRow[];
  /**
   * Every uploaded file in upload order, with its counts. Metadata written before uploads could
   * hold several files reads as one file named `filename` with the result's counts.
   */
  files: ResultFile[];
  /**
   * The largest departments and the grand total; undefined in metadata written before they were
   * kept, or when their names were too long to keep ({@linkcode MAX_LARGEST_JSON_BYTES}).
   */
  largest?: LargestDepartments;
}

/**
 * The metadata {@linkcode ResultStore.saveChunks} takes. Without `files`, the result is of one
 * file named `filename` with the result's counts; a sample without its file is in file 0.
 */
export type NewResultMeta = Omit<ResultMeta, "createdAt" | "files" | "badRowSamples"> & {
  files?: ResultFile[];
  badRowSamples: (Omit<ResultBadRow, "file" | "fileIndex"> & Partial<ResultBadRow>)[];
};

/** A stored result's file facts, with its metadata when it has some. */
export interface ResultInfo {
  /** Bytes of the result CSV. */
  size: number;
  /** When the result CSV was last modified (written). */
  modified: Date;
  /** Undefined for a result stored before metadata was kept, or whose metadata is unreadable. */
  meta: ResultMeta | undefined;
}

/** An open result file with what HTTP caching needs. The caller closes `file`. */
export interface OpenResult {
  file: Deno.FsFile;
  size: number;
  modified: Date;
}

/** Options of {@linkcode ResultStore.open}. */
export interface ResultStoreOptions {
  /**
   * This replica's name (`REPLICA_ID`), written into its temp file names. Replicas sharing the
   * folder at the same time must each have their own. @default {"local"}
   */
  replicaId?: string;
  /** Millisecond wall clock at which stale temp files are judged, for tests. @default {Date.now()} */
  now?: number;
  /** Where failed saves are reported, with their system error. @default {consoleLogger} */
  logger?: Logger;
}

/** The results folder: atomic writes, lookups by id, deletion. */
export class ResultStore {
  /** Temp files removed when the store was opened (this replica's, or stale ones of any replica). */
  removedTempFiles = 0;

  private constructor(
    /** Absolute path of the results folder. */
    readonly dir: string,
    /** This replica's name, in its temp file names. */
    readonly replicaId: string,
    /** Where failed saves are reported. */
    readonly logger: Logger,
  ) {}

  /**
   * Creates `<storageDir>/results/` when missing and removes the temp files this replica left in a
   * crash, and those of any replica not written to for {@linkcode STALE_TEMP_MS}.
   */
  static async open(storageDir: string, options: ResultStoreOptions = {}): Promise<ResultStore> {
    const replicaId = options.replicaId ?? "local";
    const now = options.now ?? Date.now();
    const store = new ResultStore(
      resolve(storageDir, "results"),
      replicaId,
      options.logger ?? consoleLogger,
    );
    await Deno.mkdir(store.dir, { recursive: true });
    for await (const entry of Deno.readDir(store.dir)) {
      const match = entry.isFile ? TEMP_FILE.exec(entry.name) : null;
      if (match === null) continue;
      const path = `${store.dir}/${entry.name}`;
      if (match[1] !== replicaId) {
        // Another replica's, maybe being written right now: only a long-untouched one is a leftover.
        let modified: Date | null;
        try {
          modified = (await Deno.stat(path)).mtime;
        } catch (error) {
          ignoreNotFound(error); // Renamed into place or removed meanwhile.
          continue;
        }
        if (modified === null || now - modified.getTime() <= STALE_TEMP_MS) continue;
      }
      if (await removeIfPresent(path)) store.removedTempFiles++;
    }
    return store;
  }

  /**
   * Writes a result atomically and durably, then returns its new id. When the storage is full
   * (`RESOURCE_EXHAUSTED`) or the folder is not writable (`FAILED_PRECONDITION`), nothing is left.
   */
  save(csv: string, meta?: NewResultMeta): Promise<string> {
    return this.saveChunks([new TextEncoder().encode(csv)], meta);
  }

  /**
   * Writes a result given in pieces as {@linkcode save} does, one piece at a time, so that a big
   * result is never held whole. A piece may be reused by its producer once the next is requested.
   * With `meta`, `<result id>.json` is written too (stamped with the time now), and renamed into
   * place before the CSV.
   */
  async saveChunks(
    chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    meta?: NewResultMeta,
  ): Promise<string> {
    const resultId = newResultId();
    const tempPath = `${this.dir}/${TEMP_PREFIX}${resultId}-${this.replicaId}`;
    const metaTempPath = `${this.dir}/${TEMP_PREFIX}${resultId}.json-${this.replicaId}`;
    let metaPlaced = false;
    try {
      await writeDurably(tempPath, chunks);
      if (meta !== undefined) {
        const json = JSON.stringify(toMetaJson(completeMeta(meta)));
        await writeDurably(metaTempPath, [new TextEncoder().encode(json)]);
        await Deno.rename(metaTempPath, this.metaPathOf(resultId));
        metaPlaced = true;
      }
      await Deno.rename(tempPath, this.pathOf(resultId));
      await syncDirectory(this.dir);
    } catch (error) {
      // Best effort: a failed cleanup must not hide why the save failed; start-up removes leftovers.
      await Deno.remove(tempPath).catch(() => {});
      if (meta !== undefined) await Deno.remove(metaTempPath).catch(() => {});
      if (metaPlaced) await Deno.remove(this.metaPathOf(resultId)).catch(() => {});
      // An AppError comes from the producer of the pieces and says what went wrong already.
      throw error instanceof AppError ? error : saveError(error, this.logger);
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

  /**
   * A result's size, modification time and metadata. Same errors as {@linkcode read}; missing or
   * unreadable metadata is no error (`meta` is then undefined).
   */
  async info(resultId: string): Promise<ResultInfo> {
    const path = this.pathOf(parseResultId(resultId));
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(path);
    } catch (error) {
      throw lookupError(error, resultId);
    }
    return {
      size: stat.size,
      modified: stat.mtime ?? new Date(0),
      meta: await this.readMeta(resultId),
    };
  }

  /**
   * A result's metadata, or undefined when it has none (stored before metadata was kept, or
   * deleted meanwhile) or it cannot be read: the result itself stays usable either way.
   * Throws `INVALID_ARGUMENT` for a malformed id only.
   */
  async readMeta(resultId: string): Promise<ResultMeta | undefined> {
    const path = this.metaPathOf(parseResultId(resultId));
    let text: string;
    try {
      using file = await Deno.open(path, { read: true });
      // Sized by the file (a few hundred bytes), never more than the limit plus the byte that
      // shows it was passed.
      const { size } = await file.stat();
      const bytes = new Uint8Array(Math.min(size, MAX_META_BYTES) + 1);
      let filled = 0;
      while (filled < bytes.length) {
        const read = await file.read(bytes.subarray(filled));
        if (read === null) break;
        filled += read;
      }
      if (filled > MAX_META_BYTES) return undefined;
      text = new TextDecoder().decode(bytes.subarray(0, filled));
    } catch {
      return undefined;
    }
    return fromMetaJson(text);
  }

  /** Deletes a result and its metadata; deleting an unknown one is not an error. */
  async delete(resultId: string): Promise<void> {
    await Deno.remove(this.pathOf(parseResultId(resultId))).catch(ignoreNotFound);
    await Deno.remove(this.metaPathOf(resultId)).catch(ignoreNotFound);
  }

  /**
   * Deletes the results last modified more than `maxAgeMs` before `now` (`RESULT_TTL_HOURS`),
   * with their metadata, and returns how many results this call deleted. Metadata files are judged
   * by their own age, so one whose CSV never arrived (a crash between the two renames) goes too.
   * Writes in progress (temp files, of any replica) are left alone; a download already under way
   * keeps reading the deleted file until it ends. Safe to run on every replica at once: a result
   * another sweep deleted first is skipped, not counted.
   */
  async sweep(maxAgeMs: number, now: number = Date.now()): Promise<number> {
    let deleted = 0;
    for await (const entry of Deno.readDir(this.dir)) {
      const match = RESULT_FILE.exec(entry.name);
      if (!entry.isFile || match === null) continue;
      const isCsv = match[2] === "csv";
      const path = isCsv ? this.pathOf(match[1]) : this.metaPathOf(match[1]);
      let modified: Date | null;
      try {
        modified = (await Deno.stat(path)).mtime;
      } catch (error) {
        ignoreNotFound(error);
        continue;
      }
      if (modified !== null && now - modified.getTime() > maxAgeMs) {
        if (await removeIfPresent(path) && isCsv) deleted++;
        // Its metadata goes with it, even if written a moment later and not yet old itself.
        if (isCsv) await removeIfPresent(this.metaPathOf(match[1]));
      }
    }
    return deleted;
  }

  private pathOf(resultId: string): string {
    return `${this.dir}/${resultId}.csv`;
  }

  private metaPathOf(resultId: string): string {
    return `${this.dir}/${resultId}.json`;
  }
}

/** Creates `path`, writes `chunks` to it and flushes it to disk. */
async function writeDurably(
  path: string,
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true, mode: 0o644 });
  try {
    for await (const chunk of chunks) await writeAll(file, chunk);
    await file.sync();
  } finally {
    file.close();
  }
}

/** `meta` stamped with the time now, its files and its samples' files filled in. */
function completeMeta(meta: NewResultMeta): ResultMeta {
  const files = meta.files ??
    [{
      name: meta.filename,
      rows: meta.rows,
      badRows: meta.badRows,
      departments: meta.departments,
    }];
  return {
    ...meta,
    createdAt: new Date(),
    files,
    badRowSamples: meta.badRowSamples.map((sample) => ({
      ...sample,
      file: sample.file ?? files[sample.fileIndex ?? 0]?.name ?? "",
      fileIndex: sample.fileIndex ?? 0,
    })),
  };
}

/**
 * The metadata file's layout: snake_case, as the API's JSON names the same fields. `files` and
 * the samples' `file` and `file_index` came later, as additions to version 1: a replica that does
 * not know them still reads the rest.
 */
function toMetaJson(meta: ResultMeta): Record<string, unknown> {
  const largest = meta.largest === undefined ? undefined : {
    total_sales: meta.largest.totalSales,
    departments: meta.largest.departments,
  };
  // Names of a megabyte each would make the file huge: then the page reads the CSV instead.
  const keepLargest = largest !== undefined &&
    JSON.stringify(largest).length <= MAX_LARGEST_JSON_BYTES;
  return {
    version: META_VERSION,
    filename: meta.filename,
    created_at: meta.createdAt.toISOString(),
    rows: meta.rows,
    bad_rows: meta.badRows,
    departments: meta.departments,
    bad_row_samples: meta.badRowSamples.map(({ line, reason, raw, file, fileIndex }) => ({
      line,
      reason,
      raw,
      file,
      file_index: fileIndex,
    })),
    files: meta.files.map(({ name, rows, badRows, departments }) => ({
      name,
      rows,
      bad_rows: badRows,
      departments,
    })),
    ...(keepLargest ? { largest } : {}),
  };
}

/** `largest` as {@linkcode toMetaJson} writes it, or undefined when it is missing or malformed. */
function largestFromJson(json: unknown): LargestDepartments | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const { total_sales: totalSales, departments } = json as Record<string, unknown>;
  const decimal = (value: unknown): value is string =>
    typeof value === "string" && /^\d{1,100}$/.test(value);
  if (!decimal(totalSales) || !Array.isArray(departments)) return undefined;
  for (const entry of departments) {
    if (
      !Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== "string" ||
      !decimal(entry[1])
    ) {
      return undefined;
    }
  }
  return { departments: departments as [string, string][], totalSales };
}

/** Metadata from its file, or undefined when the file is not what {@linkcode toMetaJson} writes. */
function fromMetaJson(text: string): ResultMeta | undefined {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const count = (value: unknown) =>
    typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof json !== "object" || json === null || json.version !== META_VERSION) return undefined;
  const createdAt = typeof json.created_at === "string" ? new Date(json.created_at) : undefined;
  const rows = count(json.rows), badRows = count(json.bad_rows);
  const departments = count(json.departments);
  if (
    typeof json.filename !== "string" || createdAt === undefined ||
    Number.isNaN(createdAt.getTime()) || rows === undefined || badRows === undefined ||
    departments === undefined || !Array.isArray(json.bad_row_samples)
  ) {
    return undefined;
  }
  let files: ResultFile[];
  if (json.files === undefined) {
    // Written before uploads could hold several files: the one file is the whole result.
    files = [{ name: json.filename, rows, badRows, departments }];
  } else {
    if (!Array.isArray(json.files) || json.files.length === 0) return undefined;
    files = [];
    for (const file of json.files as Record<string, unknown>[]) {
      const fileRows = count(file?.rows), fileBadRows = count(file?.bad_rows);
      const fileDepartments = count(file?.departments);
      if (
        typeof file.name !== "string" || fileRows === undefined || fileBadRows === undefined ||
        fileDepartments === undefined
      ) {
        return undefined;
      }
      files.push({
        name: file.name,
        rows: fileRows,
        badRows: fileBadRows,
        departments: fileDepartments,
      });
    }
  }
  const badRowSamples: ResultBadRow[] = [];
  for (const sample of json.bad_row_samples as Record<string, unknown>[]) {
    const line = count(sample?.line);
    if (line === undefined || typeof sample.reason !== "string" || typeof sample.raw !== "string") {
      return undefined;
    }
    // Older samples name no file: they are all in the one file.
    const fileIndex = sample.file_index === undefined ? 0 : count(sample.file_index);
    if (fileIndex === undefined || fileIndex >= files.length) return undefined;
    const file = sample.file === undefined ? files[fileIndex].name : sample.file;
    if (typeof file !== "string") return undefined;
    badRowSamples.push({ line, reason: sample.reason, raw: sample.raw, file, fileIndex });
  }
  // Kept later, as an addition to version 1: without it (or unreadable), the rest still holds.
  const largest = json.largest === undefined ? undefined : largestFromJson(json.largest);
  return {
    filename: json.filename,
    createdAt,
    rows,
    badRows,
    departments,
    badRowSamples,
    files,
    ...(largest === undefined ? {} : { largest }),
  };
}

/** Writes all of `bytes` to `file`: one `write` may take fewer. */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
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

/** Removes a file; false when it was already gone (another replica got there first). */
async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (error) {
    ignoreNotFound(error);
    return false;
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
function saveError(error: unknown, logger: Logger): AppError {
  const code = (error as { code?: string }).code;
  let appError: AppError;
  if (isStorageFull(error)) {
    appError = storageFull(error);
  } else if (code === "EROFS" || code === "EACCES" || code === "EPERM") {
    appError = new AppError(
      Status.FAILED_PRECONDITION,
      "Cannot store the result: the results folder is not writable",
      { cause: error },
    );
  } else {
    return storageError(error);
  }
  logger.error(`[storage] ${appError.message}: ${(error as Error).message}`);
  return appError;
}

function storageError(error: unknown): AppError {
  if (isStorageFull(error)) return storageFull(error);
  return new AppError(Status.INTERNAL, "Cannot access result storage", { cause: error });
}

/** Whether `error` says the disk or the user's quota is full. */
function isStorageFull(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** RESOURCE_EXHAUSTED for a full storage: freeing space, not a code change, lets a retry work. */
function storageFull(cause: unknown): AppError {
  return new AppError(
    Status.RESOURCE_EXHAUSTED,
    "Cannot store the result: the storage is full",
    { cause },
  );
}
