/**
 * What the service counts, for `GET /metrics` on the result port, in Prometheus text built by
 * prom-client. Each {@linkcode SalesMetrics} has its own `Registry` (never prom-client's global
 * one), so several servers in one process, as tests run them, do not share counters. The process
 * metrics (CPU, memory, file descriptors, event loop lag) describe the process, not a server: they
 * are collected once per process and appended to every server's text.
 *
 * @example
 * ```ts
 * import { SalesMetrics } from "./metrics.ts";
 * const metrics = new SalesMetrics({ replicaId: "r1", processMetrics: false });
 * metrics.resultsStored.inc();
 * const { body } = await metrics.render();
 * if (!body.includes("sales_results_stored_total 1")) throw new Error(body);
 * ```
 *
 * @module
 */

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** The transports labelled in the metrics; calls made in-process are labelled `unknown`. */
export const TRANSPORTS = ["grpc", "grpc-web"] as const;

/** Where storage failed: writing a result, reading one, or deleting one. */
export type StorageOperation = "write" | "read" | "delete";

/** Options of {@linkcode SalesMetrics}. */
export interface SalesMetricsOptions {
  /** This replica's id (`REPLICA_ID`), exported as `sales_replica_info{replica}`. @default {"local"} */
  replicaId?: string;
  /** Whether to append prom-client's default process metrics. @default {true} */
  processMetrics?: boolean;
}

/** The Prometheus text of a registry and the content type it goes out with. */
export interface MetricsText {
  contentType: string;
  body: string;
}

/** Upload durations, in seconds: from small files answered at once to long chunked uploads. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * How often the event loop lag is sampled, in milliseconds. Under Deno, prom-client's default of
 * 10 ms cost about 0.7% of a core on an idle server (50 ms: 0.4%); a stall still shows in full.
 */
const EVENT_LOOP_PRECISION_MS = 50;

/** The service's counters, gauges and histogram, in a registry of their own. */
export class SalesMetrics {
  /** This server's registry (process metrics are kept apart, see {@linkcode SalesMetrics.render}). */
  readonly registry: Registry = new Registry();
  /** `sales_uploads_started_total{transport}`: uploads begun, including those refused at once. */
  readonly uploadsStarted: Counter<"transport">;
  /** `sales_uploads_finished_total{transport}`: uploads whose result was stored. */
  readonly uploadsFinished: Counter<"transport">;
  /** `sales_uploads_failed_total{transport,code}`: uploads that ended without a result. */
  readonly uploadsFailed: Counter<"transport" | "code">;
  /** `sales_upload_received_bytes_total{transport}`: bytes of ended uploads, as sent (gzip stays compressed). */
  readonly bytesReceived: Counter<"transport">;
  /** `sales_upload_rows_total{transport}`: rows (good and bad) of ended uploads. */
  readonly rows: Counter<"transport">;
  /** `sales_upload_bad_rows_total{transport}`: bad rows of ended uploads. */
  readonly badRows: Counter<"transport">;
  /** `sales_upload_duration_seconds{transport,outcome}`: from the first call to the end. */
  readonly uploadDuration: Histogram<"transport" | "outcome">;
  /** `sales_uploads_in_progress{transport}`: uploads begun and not ended. */
  readonly uploadsInProgress: Gauge<"transport">;
  /** `sales_results_stored_total`: result files written. */
  readonly resultsStored: Counter;
  /** `sales_storage_errors_total{operation}`: result writes, reads and deletes that failed. */
  readonly storageErrors: Counter<"operation">;
  readonly #processMetrics: boolean;

  constructor(options: SalesMetricsOptions = {}) {
    const registers = [this.registry];
    this.#processMetrics = options.processMetrics ?? true;
    // Started now, so the event loop lag has samples by the first scrape.
    if (this.#processMetrics) processRegistry();
    this.uploadsStarted = new Counter({
      name: "sales_uploads_started_total",
      help: "Uploads begun (unary, stream or chunked), including those refused at once.",
      labelNames: ["transport"],
      registers,
    });
    this.uploadsFinished = new Counter({
      name: "sales_uploads_finished_total",
      help: "Uploads whose result was stored.",
      labelNames: ["transport"],
      registers,
    });
    this.uploadsFailed = new Counter({
      name: "sales_uploads_failed_total",
      help: "Uploads that ended without a result, by gRPC status code name.",
      labelNames: ["transport", "code"],
      registers,
    });
    this.bytesReceived = new Counter({
      name: "sales_upload_received_bytes_total",
      help: "Bytes received by uploads that ended, as sent (gzip counts compressed).",
      labelNames: ["transport"],
      registers,
    });
    this.rows = new Counter({
      name: "sales_upload_rows_total",
      help: "Rows, good and bad, of uploads that ended.",
      labelNames: ["transport"],
      registers,
    });
    this.badRows = new Counter({
      name: "sales_upload_bad_rows_total",
      help: "Bad rows of uploads that ended.",
      labelNames: ["transport"],
      registers,
    });
    this.uploadDuration = new Histogram({
      name: "sales_upload_duration_seconds",
      help: "Time from an upload's first call to its end, by outcome (finished or failed).",
      labelNames: ["transport", "outcome"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.uploadsInProgress = new Gauge({
      name: "sales_uploads_in_progress",
      help: "Uploads begun and not ended (streams in flight, unfinished chunked uploads).",
      labelNames: ["transport"],
      registers,
    });
    this.resultsStored = new Counter({
      name: "sales_results_stored_total",
      help: "Result files written.",
      registers,
    });
    this.storageErrors = new Counter({
      name: "sales_storage_errors_total",
      help: "Result writes, reads and deletes that failed (an unknown result is not an error).",
      labelNames: ["operation"],
      registers,
    });
    new Gauge({
      name: "sales_replica_info",
      help: "This replica's REPLICA_ID, as a label; the value is always 1.",
      labelNames: ["replica"],
      registers,
    }).set({ replica: options.replicaId ?? "local" }, 1);

    // Series exist from the start, so a rate over the first upload is not lost.
    for (const transport of TRANSPORTS) {
      for (
        const metric of [
          this.uploadsStarted,
          this.uploadsFinished,
          this.bytesReceived,
          this.rows,
          this.badRows,
        ]
      ) {
        metric.inc({ transport }, 0);
      }
      this.uploadsInProgress.set({ transport }, 0);
    }
    this.resultsStored.inc(0);
    for (const operation of ["write", "read", "delete"] as const) {
      this.storageErrors.inc({ operation }, 0);
    }
  }

  /** Counts one failed storage operation. */
  storageError(operation: StorageOperation): void {
    this.storageErrors.inc({ operation });
  }

  /** This server's metrics, then the process metrics, as Prometheus text. */
  async render(): Promise<MetricsText> {
    const own = await this.registry.metrics();
    const process = this.#processMetrics ? await processRegistry().metrics() : "";
    return { contentType: this.registry.contentType, body: own + process };
  }
}

let sharedProcessRegistry: Registry | undefined;

/**
 * prom-client's default metrics, registered once per process: each registration starts its own
 * event loop monitor, which would add up with every server a test starts. All of them work under
 * Deno 2.9.3; `nodejs_gc_duration_seconds` stays empty because Deno reports no `gc` entries, and
 * `nodejs_version_info` gives the Node.js version Deno emulates.
 */
function processRegistry(): Registry {
  if (sharedProcessRegistry === undefined) {
    sharedProcessRegistry = new Registry();
    collectDefaultMetrics({
      register: sharedProcessRegistry,
      eventLoopMonitoringPrecision: EVENT_LOOP_PRECISION_MS,
    });
  }
  return sharedProcessRegistry;
}
