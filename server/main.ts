/**
 * Process entry: loads the configuration, opens result storage, starts the gRPC server, the
 * result file server and the web UI, and shuts them down cleanly on `SIGINT`/`SIGTERM`.
 *
 * {@linkcode startServer} does everything but the process handling, so tests run whole servers
 * in-process on port 0.
 *
 * @module
 */

import { type Config, loadConfig } from "./config.ts";
import { AppError } from "./errors.ts";
import { consoleLogger, createConsoleLogger, type Logger } from "./logger.ts";
import { startGrpcServer } from "./grpc/grpc_server.ts";
import { withAuth } from "./service/auth.ts";
import { BufferBudget } from "./service/buffer_budget.ts";
import { ClientAddresses } from "./service/client_address.ts";
import { DownloadUrlSigner, DownloadUrlVerifier } from "./service/download_url.ts";
import { SalesMetrics } from "./service/metrics.ts";
import { createSalesService, type SalesServiceHandle } from "./service/sales_service.ts";
import { ResultStore } from "./storage/result_store.ts";
import { type ResultSweeper, startResultSweeper } from "./storage/result_sweeper.ts";
import { createResultsHandler } from "./web/results_handler.ts";
import { createWebHandler } from "./web/web_app.ts";

/** Options of {@linkcode startServer} that are not configuration. */
export interface StartServerOptions {
  /**
   * The one logger every part of the server reports to (start-up lines, unexpected errors,
   * storage failures, build failures in dev mode). @default {a console logger, see `log`}
   */
  logger?: Logger;
  /**
   * Where the default logger's `info` lines (start-up lines, sweeps) go; its warnings and errors
   * go to the console. Ignored when `logger` is given. @default {console.log}
   */
  log?: (line: string) => void;
  /** Where each finished or failed upload's JSON line goes. @default {the logger's info} */
  uploadLog?: (line: string) => void;
  /**
   * `deno task dev`: build the island bundle at start and reload open pages when the server
   * restarts (`server/web/dev_reload.ts`). @default {false}
   */
  dev?: boolean;
}

/** A running server: the addresses it bound and how to stop it. */
export interface RunningServer {
  /** gRPC host and the port actually bound. */
  readonly grpc: { host: string; port: number };
  /** Result file server host and the port actually bound. */
  readonly http: { host: string; port: number };
  /** Web UI (and in-process gRPC-Web) host and the port actually bound. */
  readonly web: { host: string; port: number };
  /** Base of download URLs, resolved with the bound port when not configured. */
  readonly publicResultsUrl: string;
  /** The service behind every transport (which adds the token check when one is configured). */
  readonly service: SalesServiceHandle;
  /** This server's metrics, served at `/metrics` on the result port. */
  readonly metrics: SalesMetrics;
  /** Stops accepting, lets calls in flight finish for up to `graceMs`, then stops everything. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Starts every listener for `config`; resolves once all are accepting. */
export async function startServer(
  config: Config,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const logger = options.logger ?? createConsoleLogger({ info: options.log });
  const log = (line: string) => logger.info(line);
  const store = await ResultStore.open(config.storageDir, { replicaId: config.replicaId, logger });
  if (store.removedTempFiles > 0) {
    log(
      `[storage] Removed ${store.removedTempFiles} unfinished result file(s) left by a crash of replica ${config.replicaId} or stale for an hour`,
    );
  }

  // A registry per server: tests run several in one process.
  const metrics = new SalesMetrics({ replicaId: config.replicaId });
  const signing = { secret: config.salesUrlSecret, ttlSec: config.downloadUrlTtlSec };
  const httpServer = Deno.serve(
    {
      hostname: config.httpHost,
      port: config.httpPort,
      onListen: () => {},
    },
    // Checking a signature does not involve the base URL, which needs the bound port.
    createResultsHandler({
      store,
      downloadUrls: new DownloadUrlVerifier({ secret: config.salesUrlSecret }),
      allowedHosts: config.allowedHosts,
      metrics: { render: () => metrics.render(), token: config.metricsToken },
      onStorageError: () => metrics.storageError("read"),
      logError: (message, error) => logger.error(message, error),
    }),
  );
  const httpPort = httpServer.addr.port;
  const publicResultsUrl = config.publicResultsUrl ?? `http://localhost:${httpPort}`;
  const downloadUrls = new DownloadUrlSigner({ publicResultsUrl, ...signing });

  // One budget for both transports: the bound on request bytes held in memory is per process.
  const budget = new BufferBudget({ maxBytes: config.maxBufferedBytes });
  const clientAddresses = new ClientAddresses(config.trustedProxies);
  const service = createSalesService({
    store,
    publicResultsUrl,
    downloadUrls,
    clientAddresses,
    uploadIdleTimeoutSec: config.uploadIdleTimeoutSec,
    uploadMaxLifetimeSec: config.uploadMaxLifetimeSec,
    maxUploadsPerClient: config.maxUploadsPerClient,
    maxConcurrentUploads: config.maxConcurrentUploads,
    inputOptions: { maxBytes: config.maxUploadBytes, maxDepartments: config.maxDepartments },
    // A chunk plus its few bytes of framing must fit in one message.
    chunkSize: Math.min(4 * 1024 * 1024, config.maxMessageBytes - 1024),
    metrics,
    uploadLog: options.uploadLog ?? log,
  });

  // Both transports serve the same guarded service, so the token rule is the same on each.
  const guardedService = withAuth(service, config.salesApiToken);

  let grpcServer;
  try {
    grpcServer = await startGrpcServer(guardedService, {
      host: config.grpcHost,
      port: config.grpcPort,
      maxMessageBytes: config.maxMessageBytes,
      apiToken: config.salesApiToken,
      budget,
      maxConcurrentStreams: config.maxConcurrentStreams,
      connectionIdleTimeoutSec: config.connectionIdleTimeoutSec,
      logger,
    });
  } catch (error) {
    service.close();
    await httpServer.shutdown();
    throw error;
  }

  // Loaded only in dev mode: under `deno task start` none of it exists.
  const devReload = options.dev
    ? (await import("./web/dev_reload.ts")).createDevReload({
      logError: (message, error) => logger.error(message, error),
    })
    : undefined;
  let webServer: Deno.HttpServer<Deno.NetAddr>;
  try {
    webServer = Deno.serve({
      hostname: config.webHost,
      port: config.webPort,
      onListen: () => {},
    }, createWebHandler({ service: guardedService, config, budget, devReload, logger }));
  } catch (error) {
    await grpcServer.shutdown(0);
    service.close();
    await httpServer.shutdown();
    throw error;
  }
  const webPort = webServer.addr.port;

  log(`[gRPC] Listening on ${config.grpcHost}:${grpcServer.port}`);
  log(`[HTTP] Serving results from ${store.dir}`);
  log(
    `[HTTP] Listening on ${config.httpHost}:${httpPort} (download URLs: ${publicResultsUrl}/results/)`,
  );
  log(`[Web] Serving the UI and gRPC-Web on http://${displayHost(config.webHost)}:${webPort}/`);
  if (devReload !== undefined) {
    log("[dev] Building the islands; open pages reload when the server restarts on a change");
  }
  if (config.salesApiToken !== undefined) {
    log("[auth] Every SalesService RPC requires authorization: Bearer <SALES_API_TOKEN>");
  }
  log(
    `[HTTP] Metrics at http://${displayHost(config.httpHost)}:${httpPort}/metrics${
      config.metricsToken === undefined ? "" : " (authorization: Bearer <METRICS_TOKEN>)"
    }`,
  );
  if (downloadUrls.signed) {
    log(`[HTTP] Download URLs are signed and expire after ${config.downloadUrlTtlSec} s`);
  }
  let sweeper: ResultSweeper | undefined;
  if (config.resultTtlHours !== undefined) {
    log(`[storage] Deleting results older than ${config.resultTtlHours} h`);
    sweeper = startResultSweeper(store, { maxAgeMs: config.resultTtlHours * 3_600_000, logger });
  }

  let stopped: Promise<void> | undefined;
  return {
    grpc: { host: config.grpcHost, port: grpcServer.port },
    http: { host: config.httpHost, port: httpPort },
    web: { host: config.webHost, port: webPort },
    publicResultsUrl,
    service,
    metrics,
    shutdown(graceMs = 10_000) {
      stopped ??= (async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const deadline = new Promise((resolve) => timer = setTimeout(resolve, graceMs));
        // Reload streams never end by themselves; a graceful shutdown would wait for them.
        devReload?.close();
        await Promise.all([
          grpcServer.shutdown(graceMs),
          // Deno's graceful shutdown waits for responses in flight; cut it at the deadline.
          Promise.race([httpServer.shutdown(), deadline]),
          Promise.race([webServer.shutdown(), deadline]),
        ]);
        clearTimeout(timer);
        await sweeper?.stop();
        service.close();
      })();
      return stopped;
    },
  };
}

/** A failed start: an AppError's message says it all; anything else is shown whole. */
function logStartFailure(error: unknown): void {
  if (error instanceof AppError) consoleLogger.error(error.message);
  else consoleLogger.error("Cannot start the server:", error);
}

/** A host to show in a URL: the wildcard address means "this machine". */
function displayHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "localhost";
  return host.includes(":") ? `[${host}]` : host;
}

if (import.meta.main) {
  let config: Config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (error) {
    logStartFailure(error);
    Deno.exit(1);
  }
  // Listen for signals before starting: one arriving during start-up still ends in a clean exit.
  let starting: Promise<RunningServer> | undefined;
  let stopping = false;
  const stop = async (signal: Deno.Signal) => {
    if (stopping) {
      consoleLogger.info(`[main] ${signal} received again: exiting now`);
      Deno.exit(1);
    }
    stopping = true;
    consoleLogger.info(`[main] ${signal} received: finishing calls in flight, then exiting`);
    const server = await starting?.catch(() => undefined);
    await server?.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  try {
    starting = startServer(config, { dev: Deno.args.includes("--dev"), logger: consoleLogger });
    await starting;
  } catch (error) {
    logStartFailure(error);
    Deno.exit(1);
  }
}
