/**
 * What a result page shows, as plain data: the server renders it from the stored result, the
 * upload page from the upload it just finished, and the result island receives it as props (so
 * it is JSON: totals travel as decimal text, since `bigint` is not). A result may have a million
 * departments; only the largest {@linkcode EMBEDDED_DEPARTMENTS} travel in the page, and the page
 * says so and links the CSV for the rest. A stored result's page comes from the largest departments
 * its metadata keeps ({@linkcode storedResultData}), without reading its CSV; an older result's
 * CSV is read in pieces, and only up to {@linkcode MAX_PAGE_CSV_BYTES}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { departmentsOf, largestDepartments } from "./result_data.ts";
 *
 * const largest = largestDepartments([
 *   { department: "Toys", total: 3n },
 *   { department: "Garden", total: 9007199254740993n },
 * ], 1);
 * assert.deepEqual(largest, [["Garden", "9007199254740993"]]);
 * assert.equal(departmentsOf(largest)[0].total, 9007199254740993n);
 * ```
 *
 * @module
 */

import { type DepartmentTotal, parseResultCsv } from "./result_csv.ts";
import type { UploadSummary } from "./upload_client.ts";
import { resultFileName } from "../server/storage/result_file_name.ts";
import type { BadRow, FileSummary, ResultDescription } from "../server/service/types.ts";

/** One file of a result and its own counts: the service's own type (a type import, erased). */
export type ResultFile = FileSummary;

/** One bad row, with the file it is in: the service's own type. */
export type ResultBadRow = BadRow;

/** Figures only the page that uploaded knows: what the person waited for and sent. */
export interface UploadFigures {
  bytes: number;
  wireBytes: number;
  compressed: boolean;
  /** Seconds from StartUpload to the result, in the browser. */
  totalSec: number;
}

/** Everything a result page shows, serializable. */
export interface ResultData {
  resultId: string;
  /** The result page's path (`/r/<id>`, signed when addresses are signed). */
  pagePath: string;
  /** The files that made the result, in upload order; one for a single-file upload. */
  files: ResultFile[];
  rows: number;
  badRows: number;
  departments: number;
  /** Bad rows in upload order: each file's first ones, as room allows. */
  badRowSamples: ResultBadRow[];
  /** When the result was stored, RFC 3339; undefined right after an upload. */
  createdAt?: string;
  /** The name the download gets. */
  downloadFilename: string;
  /** The CSV on the result server; empty when the page holds the CSV itself. */
  downloadUrl: string;
  /** Bytes of the result CSV. */
  sizeBytes: number;
  /** The sum of every department's total, as decimal text. */
  totalSales: string;
  /** The largest departments, largest first, each `[name, total as decimal text]`. */
  largest: [string, string][];
  /**
   * Why no department is shown (the CSV is unreadable, or too large for the page to read): the
   * page says so, and the download still works. @default {undefined} (they are shown)
   */
  departmentsUnshown?: string;
  /** Set right after an upload, on the page that uploaded. */
  upload?: UploadFigures;
}

/** How many departments a page embeds at most; the CSV has them all. */
export const EMBEDDED_DEPARTMENTS = 1000;

function byTotalDescending(a: DepartmentTotal, b: DepartmentTotal): number {
  return a.total < b.total ? 1 : a.total > b.total ? -1 : 0;
}

/** The `limit` largest departments, largest first, as JSON-safe pairs. */
export function largestDepartments(
  departments: readonly DepartmentTotal[],
  limit: number = EMBEDDED_DEPARTMENTS,
): [string, string][] {
  return [...departments].sort(byTotalDescending).slice(0, limit)
    .map((row) => [row.department, String(row.total)]);
}

/** The pairs of {@linkcode largestDepartments} back as totals. */
export function departmentsOf(largest: readonly [string, string][]): DepartmentTotal[] {
  return largest.map(([department, total]) => ({ department, total: BigInt(total) }));
}

/** The name a result download gets, as the server names it: `sales.csv.gz` → `sales.result.csv`. */
export function downloadFilenameOf(files: readonly ResultFile[], resultId: string): string {
  return resultFileName(files.map((file) => file.name), resultId);
}

/** How a result is named in headings and lists: its file, or its first file and how many more. */
export function resultTitle(files: readonly ResultFile[]): string {
  const first = files[0]?.name || "(unnamed file)";
  if (files.length <= 1) return first;
  const more = files.length - 1;
  return `${first} and ${more} more file${more === 1 ? "" : "s"}`;
}

/**
 * A stored result as GetResult describes it, counts as numbers: the service's own description,
 * with the time as RFC 3339 text (as it travels) and without `hasMetadata`, which `files` says.
 */
export type StoredResult = Omit<ResultDescription, "createdAt" | "hasMetadata"> & {
  createdAt: string;
};

/**
 * The page's data for a stored result and its CSV: the largest `limit` departments travel in
 * the data, and `departments` holds all of them (or why the CSV could not be read).
 */
export function resultDataOf(
  stored: StoredResult,
  csv: Uint8Array,
  limit: number = EMBEDDED_DEPARTMENTS,
): { result: ResultData; departments: DepartmentTotal[] | Error } {
  let departments: DepartmentTotal[] | Error;
  try {
    departments = parseResultCsv(new TextDecoder().decode(csv));
  } catch (error) {
    departments = error instanceof Error ? error : new Error(String(error));
  }
  const all = departments instanceof Error ? [] : departments;
  const result = viewOf(stored, {
    departments: all.length,
    totalSales: String(all.reduce((sum, row) => sum + row.total, 0n)),
    largest: largestDepartments(all, limit),
  });
  return { result, departments };
}

/** What a view knows of a result's departments, from its metadata or its CSV. */
interface DepartmentsSeen {
  /** How many there are (0 when unknown: the stored count then rules). */
  departments: number;
  totalSales: string;
  largest: [string, string][];
  unshown?: string;
}

/** The page's data from a stored result's description and what is known of its departments. */
function viewOf(stored: StoredResult, seen: DepartmentsSeen): ResultData {
  const files = stored.files.length > 0 ? stored.files : [{
    name: stored.filename,
    rows: stored.rows,
    badRows: stored.badRows,
    departments: stored.departments,
  }];
  return {
    resultId: stored.resultId,
    pagePath: stored.pagePath || `/r/${stored.resultId}`,
    files,
    rows: stored.rows,
    badRows: stored.badRows,
    // A result stored without metadata has no counts: its CSV tells the departments.
    departments: Math.max(stored.departments, seen.departments),
    badRowSamples: stored.badRowSamples,
    createdAt: stored.createdAt,
    downloadFilename: stored.downloadFilename,
    downloadUrl: stored.downloadUrl,
    sizeBytes: stored.sizeBytes,
    totalSales: seen.totalSales,
    largest: seen.largest,
    ...(seen.unshown === undefined ? {} : { departmentsUnshown: seen.unshown }),
  };
}

/**
 * Bytes of a result CSV a server-rendered page reads at most, for a result whose metadata keeps
 * no largest departments (stored before they were kept): about 300,000 departments. A larger
 * one's page shows its counts and its download, not its departments.
 */
export const MAX_PAGE_CSV_BYTES = 8 * 1024 * 1024;

/** Bytes of the CSV parsed at once when the page reads it: the parsed rows of one piece at most. */
const CSV_PIECE_BYTES = 64 * 1024;

/**
 * The page's data for a stored result, rendered by the server. From the largest departments the
 * metadata keeps when it keeps them (`readCsv` is not called); else from the CSV, read with
 * `readCsv` when it is at most `maxCsvBytes` and parsed a piece at a time, keeping only the
 * largest `limit`.
 */
export async function storedResultData(
  stored: StoredResult,
  readCsv: () => Promise<Uint8Array>,
  options: { limit?: number; maxCsvBytes?: number } = {},
): Promise<ResultData> {
  const limit = options.limit ?? EMBEDDED_DEPARTMENTS;
  const maxCsvBytes = options.maxCsvBytes ?? MAX_PAGE_CSV_BYTES;
  if (stored.largest !== undefined) {
    return viewOf(stored, {
      departments: 0,
      totalSales: stored.largest.totalSales,
      largest: stored.largest.departments.slice(0, limit),
    });
  }
  if (stored.sizeBytes > maxCsvBytes) {
    return viewOf(stored, {
      departments: 0,
      totalSales: "0",
      largest: [],
      unshown: `its CSV (${megabytes(stored.sizeBytes)}) is larger than the ${
        megabytes(maxCsvBytes)
      } this page reads`,
    });
  }
  const csv = await readCsv();
  try {
    return viewOf(stored, largestInCsv(csv, limit));
  } catch (error) {
    return viewOf(stored, {
      departments: 0,
      totalSales: "0",
      largest: [],
      unshown: error instanceof Error ? error.message : String(error),
    });
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * The department count, grand total and largest `limit` departments of a result CSV, parsed a
 * piece of about `pieceBytes` (64 KiB) at a time: the rows of one piece and the largest so
 * far are all that is ever held. Throws when the CSV is malformed.
 */
export function largestInCsv(
  csv: Uint8Array,
  limit: number,
  pieceBytes: number = CSV_PIECE_BYTES,
): DepartmentsSeen {
  const decoder = new TextDecoder();
  const headerEnd = csv.indexOf(0x0a);
  if (headerEnd < 0) return { departments: 0, totalSales: "0", largest: [] };
  const header = decoder.decode(csv.subarray(0, headerEnd + 1));
  let kept: DepartmentTotal[] = [];
  let count = 0;
  let total = 0n;
  let start = headerEnd + 1;
  let quoted = false;
  let scanned = start;
  while (start < csv.length) {
    // A piece ends at a line end outside quotes: a doubled quote inside a field flips twice.
    let end = csv.length;
    for (let at = scanned; at < csv.length; at++) {
      const byte = csv[at];
      if (byte === 0x22) quoted = !quoted;
      else if (byte === 0x0a && !quoted && at + 1 - start >= pieceBytes) {
        end = at + 1;
        break;
      }
    }
    scanned = end;
    const rows = parseResultCsv(header + decoder.decode(csv.subarray(start, end)));
    count += rows.length;
    for (const row of rows) total += row.total;
    // Kept rows come first: a stable sort keeps equal totals in CSV order.
    kept = [...kept, ...rows].sort(byTotalDescending).slice(0, limit);
    start = end;
  }
  return {
    departments: count,
    totalSales: String(total),
    largest: kept.map((row) => [row.department, String(row.total)]),
  };
}

/** What the upload page shows after an upload: the view's data, every department, the CSV. */
export interface FinishedUpload {
  result: ResultData;
  departments: DepartmentTotal[] | Error;
  csv: Uint8Array;
}

/** The result view's data for an upload this page just finished. */
export function finishedUploadOf(summary: UploadSummary): FinishedUpload {
  const { result, departments } = resultDataOf({
    ...summary,
    filename: summary.files[0]?.name ?? "",
    downloadFilename: downloadFilenameOf(summary.files, summary.resultId),
    createdAt: new Date().toISOString(),
    sizeBytes: summary.resultCsv.length,
  }, summary.resultCsv);
  const upload = {
    bytes: summary.bytes,
    wireBytes: summary.wireBytes,
    compressed: summary.compressed,
    totalSec: summary.totalSec,
  };
  // The CSV is in memory: the link is made from it, not the result server's URL.
  return {
    result: { ...result, createdAt: undefined, downloadUrl: "", upload },
    departments,
    csv: summary.resultCsv,
  };
}
