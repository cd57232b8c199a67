/**
 * One report per upload, whichever path it takes (unary, stream, chunked): when it ends, finished
 * or failed, its counters go to {@linkcode SalesMetrics} and one JSON line goes to the log, with
 * the time, the replica, the transport, the client, the request id, the file name, bytes, rows,
 * bad rows, departments, seconds, and the result id or the status. A report ends once; ending it
 * again does nothing, so every path may end it where it knows the outcome.
 *
 * @example
 * ```ts
 * import { UploadReports } from "./upload_report.ts";
 * const lines: string[] = [];
 * const reports = new UploadReports({ log: (line) => lines.push(line), replicaId: "r1" });
 * const report = reports.start({ transport: "grpc", peer: "127.0.0.1", requestId: "id-1" }, "unary", "a.csv");
 * report.failed(new Error("boom"));
 * if (JSON.parse(lines[0]).status !== "INTERNAL") throw new Error(lines[0]);
 * ```
 *
 * @module
 */

import { AppError, Status, statusName } from "../errors.ts";
import type { SalesMetrics } from "./metrics.ts";
import type { UploadResponse } from "./types.ts";

/** How the upload's bytes came: one message, a client stream, or the four chunked RPCs. */
export type UploadKind = "unary" | "stream" | "chunked";

/** The part of an `UploadRun` a report reads when the upload ends. */
export interface RunProgress {
  readonly filename: string;
  readonly bytes: number;
  readonly rows: number;
  readonly badRows: number;
}

/** Who an upload comes from. */
export interface UploadOrigin {
  /** `grpc`, `grpc-web`, or `unknown` (in-process). */
  transport: string;
  /** The client address, as `ClientAddresses` resolved it. */
  peer: string;
  /** The call's `x-request-id`. */
  requestId: string;
}

/** Options of {@linkcode UploadReports}. */
export interface UploadReportsOptions {
  /** Where the counters go. @default {nowhere} */
  metrics?: SalesMetrics;
  /** Where each upload's JSON line goes. @default {nowhere} */
  log?: (line: string) => void;
  /** This replica's id (`REPLICA_ID`), in every line. @default {"local"} */
  replicaId?: string;
}

/** Longest file name written to the log; the client chooses it and it could be megabytes. */
const MAX_LOGGED_FILENAME = 256;

/** Starts reports; one per service. */
export class UploadReports {
  readonly #metrics: SalesMetrics | undefined;
  readonly #log: ((line: string) => void) | undefined;
  readonly #replicaId: string;

  constructor(options: UploadReportsOptions = {}) {
    this.#metrics = options.metrics;
    this.#log = options.log;
    this.#replicaId = options.replicaId ?? "local";
  }

  /** Counts an upload as started (and in progress) and returns its report. */
  start(origin: UploadOrigin, kind: UploadKind, filename: string): UploadReport {
    this.#metrics?.uploadsStarted.inc({ transport: origin.transport });
    this.#metrics?.uploadsInProgress.inc({ transport: origin.transport });
    return new UploadReport(
      origin,
      kind,
      filename,
      (report, outcome) => this.#end(report, outcome),
    );
  }

  #end(report: UploadReport, outcome: Outcome): void {
    const metrics = this.#metrics;
    const run = report.run;
    const bytes = run?.bytes ?? 0;
    const rows = outcome.response?.rows ?? run?.rows ?? 0;
    const badRows = outcome.response?.badRows ?? run?.badRows ?? 0;
    const seconds = (performance.now() - report.startedAt) / 1000;
    const transport = report.origin.transport;
    if (metrics !== undefined) {
      metrics.uploadsInProgress.dec({ transport });
      if (outcome.response !== undefined) metrics.uploadsFinished.inc({ transport });
      else metrics.uploadsFailed.inc({ transport, code: outcome.code });
      metrics.bytesReceived.inc({ transport }, bytes);
      metrics.rows.inc({ transport }, rows);
      metrics.badRows.inc({ transport }, badRows);
      metrics.uploadDuration.observe(
        { transport, outcome: outcome.response !== undefined ? "finished" : "failed" },
        seconds,
      );
    }
    if (this.#log === undefined) return;
    const filename = run?.filename ?? report.filename;
    const line: Record<string, unknown> = {
      time: new Date().toISOString(),
      event: "upload",
      replica: this.#replicaId,
      transport,
      peer: report.origin.peer,
      request_id: report.origin.requestId,
      kind: report.kind,
      upload_id: report.uploadId,
      filename: filename.length > MAX_LOGGED_FILENAME
        ? `${filename.slice(0, MAX_LOGGED_FILENAME)}…`
        : filename,
      bytes,
      rows,
      bad_rows: badRows,
      // Known only once the aggregator has finished.
      departments: outcome.response?.departments ?? null,
      seconds: Math.round(seconds * 1000) / 1000,
      status: outcome.code,
    };
    if (outcome.response !== undefined) line.result_id = outcome.response.resultId;
    else line.message = outcome.message;
    try {
      // JSON escapes every control character: nothing a client sends can start a new line.
      this.#log(JSON.stringify(line));
    } catch {
      // A closed stdout must not fail the upload it reports.
    }
  }
}

interface Outcome {
  code: string;
  message?: string;
  response?: UploadResponse;
}

/** One upload's report; {@linkcode UploadReport.finished} or {@linkcode UploadReport.failed} ends it. */
export class UploadReport {
  /** The upload's aggregation, once it has one; its counts go in the report. */
  run: RunProgress | undefined;
  /** A chunked upload's id, once it has one. */
  uploadId: string | undefined;
  /** When the upload began (`performance.now()`). */
  readonly startedAt: number = performance.now();
  #ended = false;
  readonly #onEnd: (report: UploadReport, outcome: Outcome) => void;

  constructor(
    /** Who the upload comes from; a chunked upload takes the request id of its latest call. */
    readonly origin: UploadOrigin,
    /** The path the bytes take. */
    readonly kind: UploadKind,
    /** The file name given before the run exists. */
    readonly filename: string,
    onEnd: (report: UploadReport, outcome: Outcome) => void,
  ) {
    this.#onEnd = onEnd;
  }

  /** Whether the report was written. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Ends the report with a stored result. */
  finished(response: UploadResponse): void {
    this.#finish({ code: "OK", response });
  }

  /**
   * Ends the report with the status `error` stands for. `signal` is the call's: a cancellation
   * whose signal was aborted with a status (a gRPC-Web deadline) reports that status.
   */
  failed(error: unknown, signal?: AbortSignal): void {
    let status = statusOf(error) ?? { code: Status.INTERNAL, message: "Internal server error" };
    if (status.code === Status.CANCELLED && signal?.aborted) {
      // A call cut by its deadline reaches the service as a cancellation; its reason says more.
      const reason = statusOf(signal.reason);
      if (reason !== undefined && reason.code !== Status.CANCELLED) status = reason;
    }
    this.#finish({ code: statusName(status.code) ?? "UNKNOWN", message: status.message });
  }

  #finish(outcome: Outcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd(this, outcome);
  }
}

/**
 * The status of an error: an `AppError`'s, or that of an error from a transport's own layer that
 * carries a gRPC code (connect's `ConnectError`, whose `Code` values are gRPC's).
 */
function statusOf(error: unknown): { code: number; message: string } | undefined {
  if (error instanceof AppError) return { code: error.code, message: error.message };
  if (typeof error !== "object" || error === null) return undefined;
  const { code, rawMessage } = error as { code?: unknown; rawMessage?: unknown };
  if (
    typeof code === "number" && statusName(code) !== undefined && typeof rawMessage === "string"
  ) {
    return { code, message: rawMessage };
  }
  return undefined;
}
