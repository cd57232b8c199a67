import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import DepartmentChart from "./DepartmentChart.tsx";
import DepartmentTable from "./DepartmentTable.tsx";
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatPlural,
  formatSpeed,
} from "../browser/format.ts";
import type { DepartmentTotal } from "../browser/result_csv.ts";
import { type ResultData, resultTitle } from "../browser/result_data.ts";

/** Props of {@linkcode ResultView}. */
export interface ResultViewProps {
  /** The result's counts, files, bad rows and links. */
  result: ResultData;
  /**
   * The departments the chart and table show (all of them, or the largest few), or why they
   * could not be read.
   */
  departments: DepartmentTotal[] | Error;
  /** The result CSV, when the page holds it: the download link then needs no other origin. */
  csv?: Uint8Array;
  /** Move keyboard focus to the heading when shown (after an upload). @default {true} */
  focus?: boolean;
}

/** How many departments the bar chart shows. */
const CHART_SIZE = 10;

const dateTime = (iso: string) =>
  new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" })
    .format(new Date(iso)) + " UTC";

/**
 * A result: summary, files, download link, bad rows, chart and sortable totals. Renders on the
 * server from {@linkcode ResultData} (the result page) and in the browser after an upload.
 */
export default function ResultView({ result, departments, csv, focus = true }: ResultViewProps) {
  const heading = useRef<HTMLHeadingElement>(null);
  const [blobHref, setBlobHref] = useState<string | undefined>(undefined);
  const largest = useMemo(
    () =>
      departments instanceof Error ? [] : [...departments]
        .sort((a, b) => (a.total < b.total ? 1 : a.total > b.total ? -1 : 0))
        .slice(0, CHART_SIZE),
    [departments],
  );

  useEffect(() => {
    if (focus) heading.current?.focus();
    if (csv === undefined) return;
    // The result is already in memory (read over gRPC-Web), so the link needs no second origin.
    const href = URL.createObjectURL(
      new Blob([csv as Uint8Array<ArrayBuffer>], { type: "text/csv" }),
    );
    setBlobHref(href);
    return () => URL.revokeObjectURL(href);
  }, [csv, result.resultId]);

  const { files, upload } = result;
  const several = files.length > 1;
  const downloadHref = csv !== undefined ? blobHref : result.downloadUrl || undefined;
  const goodRows = result.rows - result.badRows;
  const shownDepartments = departments instanceof Error ? 0 : departments.length;
  const counts = `${formatPlural(goodRows, "good row")} in ${
    formatPlural(result.departments, "department")
  }${result.badRows > 0 ? `, ${formatPlural(result.badRows, "bad row")} skipped` : ""}.`;
  // One elapsed time, what the person waited (StartUpload to result), on the card and in the
  // sentence alike; the speed is the files' size over that same time.
  const elapsed = upload && formatDuration(upload.totalSec);
  // The files and bad rows come after the chart: the chart is what most people came for.
  const details = (
    <>
      {several && (
        <section aria-labelledby="files-heading">
          <h3 id="files-heading">Files</h3>
          <div class="table-scroll">
            <table class="data files" data-testid="files">
              <thead>
                <tr>
                  <th scope="col">File</th>
                  <th scope="col" class="number">Rows</th>
                  <th scope="col" class="number">Bad rows</th>
                  <th scope="col" class="number">Departments</th>
                </tr>
              </thead>
              <tbody>
                {files.map((file, index) => (
                  <tr key={index}>
                    <td class="file-name">{file.name || <em>(unnamed file)</em>}</td>
                    <td class="number">{formatCount(file.rows)}</td>
                    <td class="number">{formatCount(file.badRows)}</td>
                    <td class="number">{formatCount(file.departments)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}

      {result.badRows > 0 && (
        <section aria-labelledby="bad-rows-heading">
          <h3 id="bad-rows-heading">Bad rows</h3>
          <p class="muted">
            {result.badRows <= result.badRowSamples.length ? "" : result.files.length > 1
              // Several files share the samples: each file's first bad rows, as room allows.
              ? `${formatCount(result.badRowSamples.length)} of ${
                formatPlural(result.badRows, "bad row")
              }, the first of each file as room allows. `
              : `The first ${formatCount(result.badRowSamples.length)} of ${
                formatPlural(result.badRows, "bad row")
              }. `}
            Bad rows are skipped; the totals include only good rows.
          </p>
          <div class="table-scroll">
            <table class="data bad-rows">
              <thead>
                <tr>
                  <th scope="col" class="number">Line</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Text</th>
                  {several && <th scope="col">File</th>}
                </tr>
              </thead>
              <tbody>
                {result.badRowSamples.map((row) => (
                  <tr key={`${row.fileIndex}:${row.line}`}>
                    <td class="number">{formatCount(row.line)}</td>
                    <td>{row.reason}</td>
                    <td>
                      <code class="raw">{row.raw}</code>
                    </td>
                    {several && <td class="file-name">{row.file || <em>(unnamed file)</em>}</td>}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
    </>
  );
  return (
    <section class="card results" aria-labelledby="results-heading">
      <h2 id="results-heading" tabIndex={-1} ref={heading}>
        Results for {several
          ? formatPlural(files.length, "file")
          : <span class="file-name">{resultTitle(files)}</span>}
      </h2>
      <dl class="summary">
        <div>
          <dt>Rows</dt>
          <dd data-testid="summary-rows">{formatCount(result.rows)}</dd>
        </div>
        <div class={result.badRows > 0 ? "warn" : undefined}>
          <dt>Bad rows</dt>
          <dd data-testid="summary-bad-rows">{formatCount(result.badRows)}</dd>
        </div>
        <div>
          <dt>Departments</dt>
          <dd data-testid="summary-departments">{formatCount(result.departments)}</dd>
        </div>
        {elapsed !== undefined
          ? (
            <div>
              <dt>Time</dt>
              <dd data-testid="summary-time">{elapsed}</dd>
            </div>
          )
          : (
            <div>
              <dt>Files</dt>
              <dd data-testid="summary-files">{formatCount(files.length)}</dd>
            </div>
          )}
      </dl>
      {upload
        ? (
          <p class="muted" data-testid="summary-sentence">
            {formatBytes(upload.bytes)}
            {upload.compressed && (
              <span data-testid="summary-wire-bytes" data-bytes={upload.wireBytes}>
                {` (${formatBytes(upload.wireBytes)} sent compressed)`}
              </span>
            )} uploaded and totalled in <span data-testid="summary-elapsed">{elapsed}</span>{" "}
            ({formatSpeed(upload.bytes / Math.max(upload.totalSec, 0.001))}): {counts}
          </p>
        )
        : (
          <p class="muted" data-testid="summary-sentence">
            {result.createdAt !== undefined && <>Uploaded {dateTime(result.createdAt)}:{" "}</>}
            {counts}
          </p>
        )}
      <p class="download">
        <a
          class="button primary"
          href={downloadHref}
          download={result.downloadFilename}
          aria-disabled={downloadHref === undefined ? "true" : undefined}
          data-testid="download-link"
        >
          Download result CSV
        </a>{" "}
        <span class="muted">
          {result.downloadFilename}, {formatBytes(result.sizeBytes)} · result id{" "}
          <code>{result.resultId}</code>
          {upload && result.pagePath !== "" && (
            <>
              {" · "}
              <a href={result.pagePath} data-testid="result-page-link">Link to this result</a>
            </>
          )}
        </span>
      </p>

      {departments instanceof Error
        ? (
          <>
            <p class="alert" role="alert">
              The result could not be shown: {departments.message}. The download still works.
            </p>
            {details}
          </>
        )
        : (
          <>
            {shownDepartments < result.departments && (
              <p class="notice" data-testid="departments-bounded">
                This page shows the {formatCount(shownDepartments)} largest of{" "}
                {formatPlural(result.departments, "department")}. {downloadHref !== undefined
                  ? <a href={downloadHref} download={result.downloadFilename}>Download the CSV</a>
                  : "Download the CSV"} for all of them.
              </p>
            )}
            <section aria-labelledby="chart-heading">
              <h3 id="chart-heading">Largest departments</h3>
              <DepartmentChart departments={largest} departmentCount={result.departments} />
            </section>
            {details}
            <section aria-labelledby="totals-heading">
              <h3 id="totals-heading">Department totals</h3>
              <DepartmentTable
                departments={departments}
                departmentCount={result.departments}
                grandTotal={BigInt(result.totalSales)}
              />
            </section>
          </>
        )}
    </section>
  );
}
