import { useEffect, useRef, useState } from "preact/hooks";
import { Code } from "@connectrpc/connect";
import ResultView from "../components/ResultView.tsx";
import { checkFile } from "../browser/check_file.ts";
import TokenPrompt from "../components/TokenPrompt.tsx";
import {
  authorizationHeaders,
  sessionTokenStore,
  type TokenStore,
} from "../browser/access_token.ts";
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatPlural,
  formatSpeed,
} from "../browser/format.ts";
import type { MemberCompressor } from "../browser/gzip_members.ts";
import { recentResultsStore } from "../browser/recent_results.ts";
import { type FinishedUpload, finishedUploadOf, resultTitle } from "../browser/result_data.ts";
import {
  createGrpcWebSalesClient,
  createPageCompressor,
  type GrpcWebSalesClient,
  toUploadError,
  uploadFiles,
  type UploadProgress,
  type UploadSummary,
} from "../browser/upload_client.ts";

/** Props of {@linkcode UploadIsland}: serializable, as every island's are. */
export interface UploadIslandProps {
  /** The gRPC-Web endpoint (`GRPC_WEB_URL`); empty means this page's own origin. */
  grpcWebUrl: string;
  /** The largest upload the server accepts (`MAX_UPLOAD_BYTES`), or null when unlimited. */
  maxUploadBytes: number | null;
  /** Wait before the first retry of a lost chunk, in ms. @default {500} */
  retryDelayMs?: number;
}

type Status =
  | { kind: "idle" }
  | { kind: "uploading"; progress: UploadProgress }
  | { kind: "cancelled"; progress?: UploadProgress }
  | { kind: "error"; message: string }
  /** The server wants an access token; `rejected` when the one sent was refused. */
  | { kind: "token"; rejected: boolean };

/** Where the page remembers the "Compress before sending" setting. */
export const COMPRESS_SETTING_KEY = "sales-aggregator.compress-uploads";

/** The remembered setting: on unless it was turned off (or storage is not available). */
function readCompressSetting(): boolean {
  try {
    return localStorage.getItem(COMPRESS_SETTING_KEY) !== "off";
  } catch {
    return true;
  }
}

function saveCompressSetting(compress: boolean): void {
  try {
    localStorage.setItem(COMPRESS_SETTING_KEY, compress ? "on" : "off");
  } catch {
    // Private modes may refuse storage: the setting then lasts until the page is left.
  }
}

/** Remembers the result in this browser's recent list; storage problems only cost the entry. */
function remember(summary: UploadSummary): void {
  recentResultsStore().add({
    resultId: summary.resultId,
    pagePath: summary.pagePath,
    name: resultTitle(summary.files),
    savedAt: new Date().toISOString(),
    files: summary.files.length,
    rows: summary.rows,
    badRows: summary.badRows,
    departments: summary.departments,
  });
}

/** Bytes of `files` before the one at `index`: where its progress starts in the whole. */
function startOf(files: readonly File[], index: number): number {
  return files.slice(0, index).reduce((sum, file) => sum + file.size, 0);
}

/**
 * Choose or drop one CSV or several, upload them as one result with the resumable chunked RPCs
 * over gRPC-Web, follow each file's progress and the whole's, cancel, and see the result; the
 * address then becomes the result's page, so a reload shows it and it can be shared.
 * Server-rendered with nothing chosen, then hydrated.
 */
export default function UploadIsland(props: UploadIslandProps) {
  const [files, setFiles] = useState<File[]>([]);
  const [status, setStatus] = useState<Status>({ kind: "idle" });
  const [result, setResult] = useState<FinishedUpload>();
  const [dragging, setDragging] = useState(false);
  const [announcement, setAnnouncement] = useState("");
  const input = useRef<HTMLInputElement>(null);
  const alert = useRef<HTMLDivElement>(null);
  const uploadButton = useRef<HTMLButtonElement>(null);
  const cancelButton = useRef<HTMLButtonElement>(null);
  const upload = useRef<AbortController | undefined>(undefined);
  const client = useRef<GrpcWebSalesClient | undefined>(undefined);
  const tokens = useRef<TokenStore | undefined>(undefined);
  const [hasToken, setHasToken] = useState(false);
  const [compress, setCompress] = useState(true);
  /** Compression workers started when a file is chosen, so they are ready when it is sent. */
  const readyCompressor = useRef<MemberCompressor | undefined>(undefined);
  const announcedQuarter = useRef(-1);
  /** The address of what the page shows: this page's, or the last result's after an upload. */
  const shownAddress = useRef("");

  useEffect(() => {
    // Files chosen before the script loaded are still in the input: adopt them.
    const early = [...input.current?.files ?? []];
    if (early.length > 0) setFiles(early);
    // Only in the browser: the server renders the page without any token.
    tokens.current = sessionTokenStore();
    setHasToken(tokens.current.get() !== undefined);
    setCompress(readCompressSetting());
    // A file dropped next to the drop zone would otherwise replace the page.
    const ignore = (event: DragEvent) => event.preventDefault();
    addEventListener("dragover", ignore);
    addEventListener("drop", ignore);
    // After an upload the address is the result's page: going back or forth loads what the
    // address names, so the page shown always matches it. (A fragment, such as the skip link's,
    // also fires popstate, and changes nothing shown.)
    const shown = location.pathname + location.search;
    const followAddress = () => {
      if (location.pathname + location.search !== shownAddress.current) location.reload();
    };
    shownAddress.current = shown;
    addEventListener("popstate", followAddress);
    return () => {
      removeEventListener("dragover", ignore);
      removeEventListener("drop", ignore);
      removeEventListener("popstate", followAddress);
      readyCompressor.current?.close();
    };
  }, []);

  useEffect(() => {
    // Keep keyboard focus somewhere useful as buttons appear and disappear.
    if (status.kind === "error") alert.current?.focus();
    if (status.kind === "uploading") cancelButton.current?.focus();
    if (status.kind === "cancelled") uploadButton.current?.focus();
  }, [status.kind]);

  const busy = status.kind === "uploading";

  function choose(list: FileList | null | undefined) {
    const chosen = [...list ?? []];
    if (busy || chosen.length === 0) return;
    setFiles(chosen);
    setStatus({ kind: "idle" });
    if (compress) readyCompressor.current ??= createPageCompressor();
    const size = formatBytes(chosen.reduce((sum, file) => sum + file.size, 0));
    setAnnouncement(
      chosen.length === 1
        ? `Selected ${chosen[0].name}, ${size}`
        : `Selected ${chosen.length} files, ${size}`,
    );
  }

  function onProgress(progress: UploadProgress) {
    setStatus({ kind: "uploading", progress });
    const quarter = Math.floor((progress.sentBytes / Math.max(1, progress.totalBytes)) * 4);
    if (progress.phase === "retrying" && progress.retry) {
      setAnnouncement(
        `Connection problem, retrying (attempt ${progress.retry.attempt} of ${progress.retry.attempts})`,
      );
    } else if (progress.phase === "finishing") {
      setAnnouncement("All data sent, computing totals");
    } else if (quarter > announcedQuarter.current && quarter < 4) {
      announcedQuarter.current = quarter;
      setAnnouncement(`Uploaded ${quarter * 25}%`);
    }
  }

  function submitToken(token: string) {
    tokens.current?.set(token);
    setHasToken(true);
    start();
  }

  function forgetToken() {
    tokens.current?.clear();
    setHasToken(false);
    setAnnouncement("Access token forgotten");
    uploadButton.current?.focus();
  }

  async function start() {
    if (files.length === 0 || busy) return;
    // A new attempt, whatever its outcome, replaces the last files' results: an error must not
    // sit above results that belong to other files.
    setResult(undefined);
    // Each file on its own: the server reads each with its own header and gzip detection.
    for (const file of files) {
      const problem = await checkFile(file, null);
      if (problem !== undefined) {
        setStatus({ kind: "error", message: problem });
        return;
      }
    }
    const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
    if (props.maxUploadBytes !== null && totalBytes > props.maxUploadBytes) {
      setStatus({
        kind: "error",
        message: files.length === 1
          ? `“${files[0].name}” is ${formatBytes(totalBytes)}; this server accepts files up to ${
            formatBytes(props.maxUploadBytes)
          }.`
          : `These ${files.length} files are ${
            formatBytes(totalBytes)
          } together; this server accepts up to ${formatBytes(props.maxUploadBytes)} per upload.`,
      });
      return;
    }
    const controller = new AbortController();
    upload.current = controller;
    announcedQuarter.current = -1;
    client.current ??= createGrpcWebSalesClient(props.grpcWebUrl || location.origin, {
      headers: () => authorizationHeaders(tokens.current?.get()),
    });
    const tokenSent = tokens.current?.get() !== undefined;
    setAnnouncement(
      files.length === 1 ? `Uploading ${files[0].name}` : `Uploading ${files.length} files`,
    );
    let lastProgress: UploadProgress | undefined;
    try {
      const summary = await uploadFiles(client.current, files, {
        signal: controller.signal,
        retryDelayMs: props.retryDelayMs,
        compress,
        compressor: () => {
          const ready = readyCompressor.current ?? createPageCompressor();
          readyCompressor.current = undefined;
          return ready;
        },
        onProgress: (progress) => {
          lastProgress = progress;
          onProgress(progress);
        },
      });
      setResult(finishedUploadOf(summary));
      setStatus({ kind: "idle" });
      remember(summary);
      // The address becomes the result's page: a reload shows it, and it can be shared.
      history.pushState(null, "", summary.pagePath);
      shownAddress.current = summary.pagePath;
      setAnnouncement(
        `Upload complete: ${formatPlural(summary.rows, "row")}, ${
          formatPlural(summary.badRows, "bad row")
        }, ${formatPlural(summary.departments, "department")}`,
      );
    } catch (error) {
      if (controller.signal.aborted) {
        setStatus({ kind: "cancelled", progress: lastProgress });
        setAnnouncement("Upload cancelled");
      } else if (toUploadError(error).code === Code.Unauthenticated) {
        // A refused token is dropped, so a reload does not send it again.
        if (tokenSent) tokens.current?.clear();
        setHasToken(false);
        setStatus({ kind: "token", rejected: tokenSent });
        // A refused token is announced by the prompt's own alert; say it only once.
        setAnnouncement(tokenSent ? "" : "This server requires an access token");
      } else {
        setStatus({ kind: "error", message: toUploadError(error).message });
      }
    } finally {
      upload.current = undefined;
    }
  }

  const progress = status.kind === "uploading" ? status.progress : undefined;
  const percent = progress
    ? Math.floor((progress.sentBytes / Math.max(1, progress.totalBytes)) * 100)
    : 0;
  const secondsLeft = progress?.bytesPerSec
    ? (progress.totalBytes - progress.sentBytes) / progress.bytesPerSec
    : undefined;

  return (
    <div class="upload-island">
      <section class="card upload" aria-labelledby="upload-heading">
        <h2 id="upload-heading">Upload a sales CSV</h2>
        <div
          class={`dropzone${dragging ? " dragging" : ""}${busy ? " disabled" : ""}`}
          onDragEnter={(event) => {
            event.preventDefault();
            if (!busy) setDragging(true);
          }}
          onDragOver={(event) => event.preventDefault()}
          onDragLeave={(event) => {
            if (!(event.currentTarget as Node).contains(event.relatedTarget as Node | null)) {
              setDragging(false);
            }
          }}
          onDrop={(event) => {
            event.preventDefault();
            setDragging(false);
            choose(event.dataTransfer?.files);
          }}
        >
          <input
            ref={input}
            id="csv-file"
            class="file-input"
            type="file"
            multiple
            accept=".csv,.csv.gz,text/csv"
            disabled={busy}
            aria-describedby="file-help"
            onChange={(event) => choose((event.currentTarget as HTMLInputElement).files)}
          />
          <label for="csv-file" class="dropzone-label">
            <svg class="icon" viewBox="0 0 24 24" aria-hidden="true">
              <path d="M12 16V4m0 0-4.5 4.5M12 4l4.5 4.5M5 15v3a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2v-3" />
            </svg>
            <span class="dropzone-title">Choose a CSV file or several</span>
            <span class="dropzone-hint">or drag and drop them here; several make one result</span>
          </label>
          <p id="file-help" class="file-help" data-testid="file-info">
            {files.length === 1
              ? (
                <>
                  <strong class="file-name">{files[0].name}</strong> · {formatBytes(files[0].size)}
                </>
              )
              : files.length > 1
              ? (
                <>
                  <strong>{files.length} files</strong> ·{" "}
                  {formatBytes(files.reduce((sum, file) => sum + file.size, 0))}:{" "}
                  {files.map((file, index) => (
                    <span key={index} class="file-name chosen-file">
                      {index > 0 ? ", " : ""}
                      {file.name}
                    </span>
                  ))}
                </>
              )
              : "Columns: Department Name, Date, Number of Sales. Any size works."}
          </p>
        </div>

        <div class="actions">
          <button
            ref={uploadButton}
            type="button"
            class="button primary"
            disabled={files.length === 0 || busy}
            onClick={start}
          >
            {busy ? "Uploading…" : "Upload"}
          </button>
          {busy && (
            <button
              ref={cancelButton}
              type="button"
              class="button"
              onClick={() => upload.current?.abort()}
            >
              Cancel
            </button>
          )}
          {hasToken && !busy && (
            <button type="button" class="link" onClick={forgetToken}>
              Forget access token
            </button>
          )}
        </div>

        <div class="setting">
          <input
            id="compress-upload"
            type="checkbox"
            checked={compress}
            disabled={busy}
            aria-describedby="compress-help"
            onChange={(event) => {
              const checked = (event.currentTarget as HTMLInputElement).checked;
              setCompress(checked);
              saveCompressSetting(checked);
              if (checked && files.length > 0) {
                readyCompressor.current ??= createPageCompressor();
              } else if (!checked) {
                readyCompressor.current?.close();
                readyCompressor.current = undefined;
              }
            }}
          />{" "}
          <label for="compress-upload">Compress before sending</label>
          <p id="compress-help" class="file-help">
            Sales CSV shrinks about four times, so uploads over a slow network finish sooner. On a
            fast network the page sends the file as it is; .gz files are always sent as they are.
          </p>
        </div>

        {status.kind === "token" && (
          <TokenPrompt
            rejected={status.rejected}
            onSubmit={submitToken}
            onCancel={() => {
              setStatus({ kind: "idle" });
              setAnnouncement("Upload not started: no access token");
              uploadButton.current?.focus();
            }}
          />
        )}

        {progress && (
          <div class="progress" data-testid="progress">
            <div class="progress-head">
              <span>
                {progress.phase === "finishing"
                  ? "Computing totals…"
                  : progress.phase === "retrying"
                  ? "Connection problem, retrying…"
                  : "Uploading…"}
              </span>
              <span aria-hidden="true">{percent}%</span>
            </div>
            <progress
              max={progress.totalBytes}
              value={progress.sentBytes}
              aria-label={`Upload progress, ${percent}%`}
            />
            {files.length > 1 && (
              <ol class="file-progress" data-testid="file-progress">
                {files.map((file, index) => {
                  const sent = Math.min(
                    file.size,
                    Math.max(0, progress.sentBytes - startOf(files, index)),
                  );
                  const filePercent = Math.floor((sent / Math.max(1, file.size)) * 100);
                  const state = sent >= file.size
                    ? "sent"
                    : index === progress.fileIndex
                    ? "sending"
                    : "waiting";
                  return (
                    <li key={index} data-state={state}>
                      <span class="file-name">{file.name}</span>
                      <meter
                        min={0}
                        max={Math.max(1, file.size)}
                        value={sent}
                        aria-label={`${file.name}, ${filePercent}% sent`}
                      />
                      <span class="muted">
                        {state === "waiting" ? "waiting" : `${filePercent}%`}
                      </span>
                    </li>
                  );
                })}
              </ol>
            )}
            <dl class="stats">
              <div>
                <dt>Sent</dt>
                <dd>
                  {formatBytes(progress.sentBytes)} of {formatBytes(progress.totalBytes)}
                </dd>
              </div>
              {progress.compressed && (
                <div>
                  <dt>Compressed</dt>
                  <dd data-testid="wire-bytes">
                    {formatBytes(progress.wireBytes)}
                    {progress.wireBytes > 0 && progress.sentBytes > 0
                      ? ` (${(progress.sentBytes / progress.wireBytes).toFixed(1)}× smaller)`
                      : ""}
                  </dd>
                </div>
              )}
              <div>
                <dt>Rows</dt>
                <dd>{formatCount(progress.rows)}</dd>
              </div>
              <div>
                <dt>Speed</dt>
                <dd>{progress.bytesPerSec ? formatSpeed(progress.bytesPerSec) : "–"}</dd>
              </div>
              <div>
                <dt>Time left</dt>
                <dd>{secondsLeft !== undefined ? formatDuration(secondsLeft) : "–"}</dd>
              </div>
            </dl>
            {progress.retry && (
              <p class="muted">
                {progress.retry.reason}. Trying again in{" "}
                {formatDuration(progress.retry.delayMs / 1000)} (attempt {progress.retry.attempt} of
                {" "}
                {progress.retry.attempts}).
              </p>
            )}
          </div>
        )}

        {status.kind === "cancelled" && (
          <p class="notice" data-testid="cancelled">
            Upload cancelled{status.progress
              ? ` after ${formatBytes(status.progress.sentBytes)} of ${
                formatBytes(status.progress.totalBytes)
              }`
              : ""}. Nothing was saved.
          </p>
        )}
        {status.kind === "error" && (
          <div class="alert" role="alert" tabIndex={-1} ref={alert} data-testid="error">
            <strong>Upload failed.</strong> {status.message}
          </div>
        )}
        <p class="visually-hidden" role="status" aria-live="polite" aria-atomic="true">
          {announcement}
        </p>
      </section>
      {result && (
        <ResultView result={result.result} departments={result.departments} csv={result.csv} />
      )}
    </div>
  );
}
