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
import { type DepartmentTotal, parseResultCsv } from "../browser/result_csv.ts";
import type { UploadSummary } from "../browser/upload_client.ts";

/** Props of {@linkcode ResultView}. */
export interface ResultViewProps {
  fileName: string;
  summary: UploadSummary;
}

/** How many departments the bar chart shows. */
const CHART_SIZE = 10;

/** The finished upload: summary, download link, bad rows, chart and sortable totals. */
export default function ResultView({ fileName, summary }: ResultViewProps) {
  const heading = useRef<HTMLHeadingElement>(null);
  const [downloadHref, setDownloadHref] = useState<string | undefined>(undefined);
  const departments = useMemo<DepartmentTotal[] | Error>(() => {
    try {
      return parseResultCsv(new TextDecoder().decode(summary.resultCsv));
    } catch (error) {
      return error as Error;
    }
  }, [summary]);
  const largest = useMemo(
    () =>
      departments instanceof Error ? [] : [...departments]
        .sort((a, b) => (a.total < b.total ? 1 : a.total > b.total ? -1 : 0))
        .slice(0, CHART_SIZE),
    [departments],
  );

  useEffect(() => {
    heading.current?.focus();
    // The result is already in memory (read over gRPC-Web), so the link needs no second origin.
    const href = URL.createObjectURL(
      new Blob([summary.resultCsv as Uint8Array<ArrayBuffer>], { type: "text/csv" }),
    );
    setDownloadHref(href);
    return () => URL.revokeObjectURL(href);
  }, [summary]);

  const resultName = fileName.replace(/(\.csv)?(\.gz)?$/i, "") + ".result.csv";
  const goodRows = summary.rows - summary.badRows;
  // One elapsed time, what the person waited (StartUpload to result), on the card and in the
  // sentence alike; the speed is the file's size over that same time.
  const elapsed = formatDuration(summary.totalSec);
  const speed = formatSpeed(summary.bytes / Math.max(summary.totalSec, 0.001));
  return (
    <section class="card results" aria-labelledby="results-heading">
      <h2 id="results-heading" tabIndex={-1} ref={heading}>
        Results for <span class="file-name">{fileName}</span>
      </h2>
      <dl class="summary">
        <div>
          <dt>Rows</dt>
          <dd data-testid="summary-rows">{formatCount(summary.rows)}</dd>
        </div>
        <div class={summary.badRows > 0 ? "warn" : undefined}>
          <dt>Bad rows</dt>
          <dd data-testid="summary-bad-rows">{formatCount(summary.badRows)}</dd>
        </div>
        <div>
          <dt>Departments</dt>
          <dd data-testid="summary-departments">{formatCount(summary.departments)}</dd>
        </div>
        <div>
          <dt>Time</dt>
          <dd data-testid="summary-time">{elapsed}</dd>
        </div>
      </dl>
      <p class="muted" data-testid="summary-sentence">
        {formatBytes(summary.bytes)}
        {summary.compressed && (
          <span data-testid="summary-wire-bytes" data-bytes={summary.wireBytes}>
            {` (${formatBytes(summary.wireBytes)} sent compressed)`}
          </span>
        )} uploaded and totalled in <span data-testid="summary-elapsed">{elapsed}</span> ({speed}):
        {" "}
        {formatPlural(goodRows, "good row")} in {formatPlural(summary.departments, "department")}
        {summary.badRows > 0 ? `, ${formatPlural(summary.badRows, "bad row")} skipped` : ""}.
      </p>
      <p class="download">
        <a
          class="button primary"
          href={downloadHref}
          download={resultName}
          aria-disabled={downloadHref === undefined ? "true" : undefined}
          data-testid="download-link"
        >
          Download result CSV
        </a>{" "}
        <span class="muted">
          {resultName}, {formatBytes(summary.resultCsv.length)} · result id{" "}
          <code>{summary.resultId}</code>
        </span>
      </p>

      {summary.badRows > 0 && (
        <section aria-labelledby="bad-rows-heading">
          <h3 id="bad-rows-heading">Bad rows</h3>
          <p class="muted">
            {summary.badRows > summary.badRowSamples.length
              ? `The first ${formatCount(summary.badRowSamples.length)} of ${
                formatPlural(summary.badRows, "bad row")
              }. `
              : ""}
            Bad rows are skipped; the totals include only good rows.
          </p>
          <div class="table-scroll">
            <table class="data bad-rows">
              <thead>
                <tr>
                  <th scope="col" class="number">Line</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Text</th>
                </tr>
              </thead>
              <tbody>
                {summary.badRowSamples.map((row) => (
                  <tr key={row.line}>
                    <td class="number">{formatCount(row.line)}</td>
                    <td>{row.reason}</td>
                    <td>
                      <code class="raw">{row.raw}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}

      {departments instanceof Error
        ? (
          <p class="alert" role="alert">
            The result could not be shown: {departments.message}. The download still works.
          </p>
        )
        : (
          <>
            <section aria-labelledby="chart-heading">
              <h3 id="chart-heading">Largest departments</h3>
              <DepartmentChart departments={largest} departmentCount={departments.length} />
            </section>
            <section aria-labelledby="totals-heading">
              <h3 id="totals-heading">Department totals</h3>
              <DepartmentTable departments={departments} />
            </section>
          </>
        )}
    </section>
  );
}
