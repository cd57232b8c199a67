/**
 * Uploads of several files for the tests of every path (service, gRPC stream, chunked, gRPC-Web,
 * CLI): the files, and what the result must be, worked out the slow, obvious way: each file
 * aggregated on its own, the totals added up and the counts and samples put one after another.
 *
 * @module
 */

import { gzipSync } from "node:zlib";
import { formatResultCsv } from "../aggregate/_reference.ts";
import { SalesInput } from "../aggregate/sales_input.ts";
import type { BadRow, FileSummary, UploadChunk } from "./types.ts";

/** One file of an upload. */
export interface TestFile {
  name: string;
  bytes: Uint8Array;
}

const encoder = new TextEncoder();

/**
 * Three files: one with a header whose last record leaves a quote open (that record is its own
 * bad row and must not swallow the next file's first line), one gzip without a header, one with
 * a header and a bad row on its line 3.
 */
export const THREE_FILES: readonly TestFile[] = [
  {
    name: "north.csv",
    bytes: encoder.encode(
      "Department Name,Date,Number of Sales\nToys,2024-01-02,3\n" +
        '"Garden, Outdoor",2024-01-03,4\nToys,2024-13-01,9\n"Garden,2024-01-05,4',
    ),
  },
  {
    name: "south.csv.gz",
    bytes: gzipSync(encoder.encode("Toys,2024-02-01,10\nBooks,2024-02-02,5\nBooks,bad,1\n")),
  },
  {
    name: "west.csv",
    bytes: encoder.encode(
      "Department Name,Date,Number of Sales\r\nBooks,2024-03-01,7\r\nToys,2024-03-02\r\n" +
        '"Garden, Outdoor",2024-03-03,1\r\n',
    ),
  },
];

/** Two files: a gzip one with a header, then a plain one without. */
export const TWO_FILES: readonly TestFile[] = [
  {
    name: "a.csv.gz",
    bytes: gzipSync(encoder.encode("Department Name,Date,Number of Sales\nToys,2024-01-02,3\n")),
  },
  { name: "b.csv", bytes: encoder.encode("Toys,2024-01-03,4\nGames,2024-01-04,x\n") },
];

/** Three files whose second is gzip cut short: the upload must fail naming it. */
export const CORRUPT_SECOND: readonly TestFile[] = [
  THREE_FILES[0],
  {
    name: "broken.csv.gz",
    bytes: THREE_FILES[1].bytes.subarray(0, THREE_FILES[1].bytes.length - 5),
  },
  THREE_FILES[2],
];

/** What an upload of `files` must answer, and the result CSV it must store. */
export interface MultiFileExpectation {
  csv: string;
  rows: number;
  badRows: number;
  departments: number;
  files: FileSummary[];
  badRowSamples: BadRow[];
}

/** Aggregates each file on its own and adds the results up (the reference). */
export async function expectedResult(files: readonly TestFile[]): Promise<MultiFileExpectation> {
  const totals = new Map<string, bigint>();
  const summaries: FileSummary[] = [];
  const samples: BadRow[] = [];
  for (const [fileIndex, file] of files.entries()) {
    const input = new SalesInput();
    await input.push(file.bytes);
    const result = await input.finish();
    for (const [department, total] of result.totals) {
      totals.set(department, (totals.get(department) ?? 0n) + total);
    }
    summaries.push({
      name: file.name,
      rows: result.rows,
      badRows: result.badRows,
      departments: result.departments,
    });
    for (const { line, reason, raw } of result.badRowSamples) {
      if (samples.length < 20) samples.push({ line, reason, raw, file: file.name, fileIndex });
    }
  }
  return {
    csv: formatResultCsv(totals),
    rows: summaries.reduce((sum, file) => sum + file.rows, 0),
    badRows: summaries.reduce((sum, file) => sum + file.badRows, 0),
    departments: totals.size,
    files: summaries,
    badRowSamples: samples,
  };
}

/**
 * `files` as the chunks of one `UploadCSVStream`: each file cut into pieces of `size` bytes, its
 * name on its first piece (an empty file is one empty piece with its name).
 */
export function* streamChunks(files: readonly TestFile[], size: number): Iterable<UploadChunk> {
  for (const file of files) {
    if (file.bytes.length === 0) yield { data: new Uint8Array(0), filename: file.name };
    for (let start = 0; start < file.bytes.length; start += size) {
      yield {
        data: file.bytes.subarray(start, start + size),
        filename: start === 0 ? file.name : "",
      };
    }
  }
}

/** `files` as chunked appends of at most `size` bytes: offset, file index and data. */
export function appends(
  files: readonly TestFile[],
  size: number,
): { offset: number; fileIndex: number; data: Uint8Array }[] {
  const result = [];
  let offset = 0;
  for (const [fileIndex, file] of files.entries()) {
    for (let start = 0; start < file.bytes.length; start += size) {
      const data = file.bytes.subarray(start, start + size);
      result.push({ offset, fileIndex, data });
      offset += data.length;
    }
  }
  return result;
}

/** Total bytes of `files`. */
export function sizeOf(files: readonly TestFile[]): number {
  return files.reduce((sum, file) => sum + file.bytes.length, 0);
}
