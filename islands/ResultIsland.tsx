import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Code } from "@connectrpc/connect";
import ResultView from "../components/ResultView.tsx";
import TokenPrompt from "../components/TokenPrompt.tsx";
import {
  authorizationHeaders,
  sessionTokenStore,
  type TokenStore,
} from "../browser/access_token.ts";
import type { DepartmentTotal } from "../browser/result_csv.ts";
import { departmentsOf, type ResultData, resultDataOf } from "../browser/result_data.ts";
import { createGrpcWebSalesClient, toUploadError } from "../browser/upload_client.ts";

/** Props of {@linkcode ResultIsland}: serializable, as every island's are. */
export interface ResultIslandProps {
  /** The result, rendered by the server; absent when the server requires a token to show it. */
  result?: ResultData;
  /** The result's id, for loading it over gRPC-Web when `result` is absent. */
  resultId: string;
  /** The gRPC-Web endpoint (`GRPC_WEB_URL`); empty means this page's own origin. */
  grpcWebUrl: string;
}

type Loaded = { result: ResultData; departments: DepartmentTotal[] | Error; csv?: Uint8Array };

type Status =
  | { kind: "shown" }
  | { kind: "token"; rejected: boolean }
  | { kind: "loading" }
  | { kind: "missing" }
  | { kind: "error"; message: string };

/**
 * A result page's content. With `result`, the server's rendering of it, made interactive (the
 * totals table sorts). Without, the server did not show it because it requires an access token:
 * the island asks for the token (or takes this tab's), then reads the result over gRPC-Web
 * (GetResult and DownloadResult) and shows the same view.
 */
export default function ResultIsland({ result, resultId, grpcWebUrl }: ResultIslandProps) {
  const rendered = useMemo<Loaded | undefined>(
    () =>
      result && {
        result,
        // The server tells why it shows no department (a CSV too large to read for the page).
        departments: result.departmentsUnshown !== undefined
          ? new Error(result.departmentsUnshown)
          : departmentsOf(result.largest),
      },
    [result],
  );
  const [loaded, setLoaded] = useState<Loaded | undefined>(rendered);
  const [status, setStatus] = useState<Status>(
    result ? { kind: "shown" } : { kind: "loading" },
  );
  const tokens = useRef<TokenStore | undefined>(undefined);
  const alert = useRef<HTMLDivElement>(null);

  async function load() {
    setStatus({ kind: "loading" });
    const token = tokens.current?.get();
    const client = createGrpcWebSalesClient(grpcWebUrl || location.origin, {
      headers: () => authorizationHeaders(tokens.current?.get()),
    });
    try {
      const described = await client.getResult({ resultId });
      const download = await client.downloadResult({ resultId });
      const files = described.files.map((file) => ({
        name: file.name,
        rows: Number(file.rows),
        badRows: Number(file.badRows),
        departments: Number(file.departments),
      }));
      const view = resultDataOf({
        resultId,
        downloadUrl: described.downloadUrl,
        filename: described.filename,
        downloadFilename: described.downloadFilename,
        rows: Number(described.rows),
        badRows: Number(described.badRows),
        departments: Number(described.departments),
        badRowSamples: described.badRowSamples.map((row) => ({
          line: Number(row.line),
          reason: row.reason,
          raw: row.raw,
          file: row.file,
          fileIndex: row.fileIndex,
        })),
        createdAt: described.createdAt,
        sizeBytes: Number(described.sizeBytes),
        files,
        pagePath: described.pagePath,
      }, download.data);
      setLoaded({ ...view, csv: download.data });
      setStatus({ kind: "shown" });
    } catch (error) {
      const failure = toUploadError(error);
      if (failure.code === Code.Unauthenticated) {
        // A refused token is dropped, so a reload does not send it again.
        if (token !== undefined) tokens.current?.clear();
        setStatus({ kind: "token", rejected: token !== undefined });
      } else if (failure.code === Code.NotFound || failure.code === Code.InvalidArgument) {
        setStatus({ kind: "missing" });
      } else {
        setStatus({ kind: "error", message: failure.message });
      }
    }
  }

  useEffect(() => {
    if (result) return;
    // Only in the browser: the server never sees the token.
    tokens.current = sessionTokenStore();
    if (tokens.current.get() === undefined) setStatus({ kind: "token", rejected: false });
    else load();
  }, []);

  useEffect(() => {
    if (status.kind === "error" || status.kind === "missing") alert.current?.focus();
  }, [status.kind]);

  if (loaded && status.kind === "shown") {
    return (
      <ResultView
        result={loaded.result}
        departments={loaded.departments}
        csv={loaded.csv}
        focus={result === undefined}
      />
    );
  }
  return (
    <section class="card" aria-labelledby="result-locked-heading">
      <h2 id="result-locked-heading">Result {resultId}</h2>
      {status.kind === "loading" && (
        <p class="muted" data-testid="result-loading">
          {result === undefined && tokens.current === undefined
            ? "This server requires an access token to show results. Loading…"
            : "Loading the result…"}
        </p>
      )}
      {status.kind === "token" && (
        <TokenPrompt
          rejected={status.rejected}
          purpose="view"
          onSubmit={(token) => {
            tokens.current?.set(token);
            load();
          }}
        />
      )}
      {status.kind === "missing" && (
        <div class="alert" role="alert" tabIndex={-1} ref={alert} data-testid="error">
          This result does not exist: it was deleted after its time on the server, or the address is
          wrong. <a href="/">Upload a file</a> to make a new one.
        </div>
      )}
      {status.kind === "error" && (
        <div class="alert" role="alert" tabIndex={-1} ref={alert} data-testid="error">
          <strong>The result could not be loaded.</strong> {status.message}
        </div>
      )}
    </section>
  );
}
