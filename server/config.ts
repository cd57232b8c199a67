/**
 * The service configuration: every environment variable is parsed and validated here, once, at
 * start-up. Nothing else reads `Deno.env`; `main.ts` passes the frozen {@linkcode Config} down.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * const config = loadConfig({ GRPC_PORT: "0", STORAGE_DIR: "/tmp/sales" });
 * if (config.grpcPort !== 0 || config.maxMessageBytes !== 64 * 1024 * 1024) throw new Error();
 * ```
 *
 * @module
 */

import { AppError, Status } from "./errors.ts";
import { parseAddressRange } from "./service/client_address.ts";
import { REPLICA_ID } from "./storage/result_id.ts";

/** The validated configuration of the service. Built only by {@linkcode loadConfig}. */
export interface Config {
  /** Interface the gRPC server binds to (`GRPC_HOST`); loopback unless opened on purpose. @default {"127.0.0.1"} */
  readonly grpcHost: string;
  /** gRPC port (`GRPC_PORT`); 0 picks a free port. @default {50051} */
  readonly grpcPort: number;
  /** Interface the result file server binds to (`HTTP_HOST`). @default {"127.0.0.1"} */
  readonly httpHost: string;
  /** Result file server port (`HTTP_PORT`); 0 picks a free port. @default {8080} */
  readonly httpPort: number;
  /** Folder holding `results/` (`STORAGE_DIR`). @default {"./storage"} */
  readonly storageDir: string;
  /**
   * Base of every `download_url` (`PUBLIC_RESULTS_URL`), without a trailing slash. Undefined means
   * `http://localhost:<bound HTTP port>`, resolved once the result server listens.
   */
  readonly publicResultsUrl: string | undefined;
  /** Largest gRPC message accepted, in bytes (`MAX_MESSAGE_BYTES`). @default {67108864} */
  readonly maxMessageBytes: number;
  /** Seconds without activity after which a chunked upload expires (`UPLOAD_IDLE_TIMEOUT_SEC`). @default {900} */
  readonly uploadIdleTimeoutSec: number;

  /** Interface the web UI binds to (`WEB_HOST`). @default {"127.0.0.1"} */
  readonly webHost: string;
  /** Web UI and gRPC-Web port (`WEB_PORT`). @default {3000} */
  readonly webPort: number;
  /** gRPC-Web endpoint the page talks to (`GRPC_WEB_URL`); empty means the page's own origin. @default {""} */
  readonly grpcWebUrl: string;
  /** Origins allowed to call gRPC-Web cross-origin (`CORS_ORIGINS`, comma separated). @default {[]} */
  readonly corsOrigins: readonly string[];

  /** Bearer token every RPC needs when set (`SALES_API_TOKEN`). @default {undefined} (off) */
  readonly salesApiToken: string | undefined;
  /**
   * Bearer token `GET /metrics` needs when set (`METRICS_TOKEN`); unset, the metrics are open.
   * @default {undefined} (open)
   */
  readonly metricsToken: string | undefined;
  /** HMAC key for signed download URLs when set (`SALES_URL_SECRET`). @default {undefined} (off) */
  readonly salesUrlSecret: string | undefined;
  /** Lifetime of a signed download URL in seconds (`DOWNLOAD_URL_TTL_SEC`). @default {3600} */
  readonly downloadUrlTtlSec: number;
  /** Age in hours after which results are deleted (`RESULT_TTL_HOURS`). @default {undefined} (off) */
  readonly resultTtlHours: number | undefined;
  /** Largest upload in bytes on any path (`MAX_UPLOAD_BYTES`). @default {undefined} (unlimited) */
  readonly maxUploadBytes: number | undefined;
  /** Uploads in progress at once (`MAX_CONCURRENT_UPLOADS`). @default {64} */
  readonly maxConcurrentUploads: number;
  /** Distinct departments allowed in one upload (`MAX_DEPARTMENTS`). @default {1000000} */
  readonly maxDepartments: number;

  /**
   * Bytes of request messages that may be in the middle of being received at once, over all calls
   * and both transports (`MAX_BUFFERED_BYTES`); at least `MAX_MESSAGE_BYTES`. @default {1073741824}
   */
  readonly maxBufferedBytes: number;
  /** Longest a chunked upload may stay open, however active (`UPLOAD_MAX_LIFETIME_SEC`). @default {86400} */
  readonly uploadMaxLifetimeSec: number;
  /** Uploads in progress at once for one client address (`MAX_UPLOADS_PER_CLIENT`). @default {16} */
  readonly maxUploadsPerClient: number;
  /**
   * Peers whose `x-forwarded-for` is believed (`TRUSTED_PROXIES`, comma-separated IPs or CIDRs).
   * @default {[]} (none: the peer address is the client)
   */
  readonly trustedProxies: readonly string[];
  /** HTTP/2 streams one gRPC connection may have open at once (`MAX_CONCURRENT_STREAMS`). @default {256} */
  readonly maxConcurrentStreams: number;
  /** Seconds a connection may stay open with no call before it is closed (`CONNECTION_IDLE_TIMEOUT_SEC`). @default {300} */
  readonly connectionIdleTimeoutSec: number;
  /**
   * Host names the HTTP ports answer to (`ALLOWED_HOSTS`, comma separated); others get 421.
   * @default {[]} (any host)
   */
  readonly allowedHosts: readonly string[];
  /**
   * This process's name among the replicas sharing `STORAGE_DIR` (`REPLICA_ID`): it names the
   * temp files this replica writes and the chunked uploads it holds, so it must differ between
   * replicas running at the same time. Letters, digits, `.`, `_` and `-`, at most 63 characters.
   * @default {"<host name>-<process id>"}
   */
  readonly replicaId: string;
}

/** Largest value accepted for byte sizes that go to grpc-js, which treats them as 32-bit ints. */
const MAX_INT32 = 2 ** 31 - 1;
/** Longest timer `setTimeout` supports, in seconds. */
const MAX_TIMER_SEC = Math.floor(MAX_INT32 / 1000);

/**
 * Parses and validates the environment. Unset and empty variables take their defaults. Every bad
 * value is reported at once in one `AppError(INVALID_ARGUMENT)` whose message names each variable.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const problems: string[] = [];
  const read = <T>(name: string, fallback: T, parse: (value: string) => T): T => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return fallback;
    try {
      return parse(raw);
    } catch (error) {
      problems.push(`${name} ${(error as Error).message}, got ${JSON.stringify(env[name])}`);
      return fallback;
    }
  };

  const httpPort = read("HTTP_PORT", 8080, parsePort);
  const config: Config = {
    grpcHost: read("GRPC_HOST", "127.0.0.1", parseHost),
    grpcPort: read("GRPC_PORT", 50051, parsePort),
    httpHost: read("HTTP_HOST", "127.0.0.1", parseHost),
    httpPort,
    storageDir: read("STORAGE_DIR", "./storage", (value) => value),
    publicResultsUrl: read(
      "PUBLIC_RESULTS_URL",
      httpPort === 0 ? undefined : `http://localhost:${httpPort}`,
      parseBaseUrl,
    ),
    maxMessageBytes: read("MAX_MESSAGE_BYTES", 64 * 1024 * 1024, integerIn(1024, MAX_INT32)),
    uploadIdleTimeoutSec: read("UPLOAD_IDLE_TIMEOUT_SEC", 900, numberIn(0.001, MAX_TIMER_SEC)),

    webHost: read("WEB_HOST", "127.0.0.1", parseHost),
    webPort: read("WEB_PORT", 3000, parsePort),
    grpcWebUrl: read("GRPC_WEB_URL", "", parseBaseUrl),
    corsOrigins: Object.freeze(read("CORS_ORIGINS", [], parseOrigins)),

    salesApiToken: read("SALES_API_TOKEN", undefined, parseToken),
    metricsToken: read("METRICS_TOKEN", undefined, parseToken),
    salesUrlSecret: read("SALES_URL_SECRET", undefined, (value) => value),
    downloadUrlTtlSec: read("DOWNLOAD_URL_TTL_SEC", 3600, integerIn(1, MAX_TIMER_SEC)),
    resultTtlHours: read("RESULT_TTL_HOURS", undefined, numberIn(1 / 3600, 24 * 365 * 100)),
    maxUploadBytes: read("MAX_UPLOAD_BYTES", undefined, integerIn(1, Number.MAX_SAFE_INTEGER)),
    maxConcurrentUploads: read("MAX_CONCURRENT_UPLOADS", 64, integerIn(1, 1_000_000)),
    maxDepartments: read("MAX_DEPARTMENTS", 1_000_000, integerIn(1, 1_000_000_000)),

    maxBufferedBytes: read(
      "MAX_BUFFERED_BYTES",
      1024 * 1024 * 1024,
      integerIn(1024, Number.MAX_SAFE_INTEGER),
    ),
    uploadMaxLifetimeSec: read("UPLOAD_MAX_LIFETIME_SEC", 86400, numberIn(0.001, MAX_TIMER_SEC)),
    maxUploadsPerClient: read("MAX_UPLOADS_PER_CLIENT", 16, integerIn(1, 1_000_000)),
    trustedProxies: Object.freeze(read("TRUSTED_PROXIES", [], parseTrustedProxies)),
    maxConcurrentStreams: read("MAX_CONCURRENT_STREAMS", 256, integerIn(1, 2 ** 31 - 1)),
    connectionIdleTimeoutSec: read(
      "CONNECTION_IDLE_TIMEOUT_SEC",
      300,
      numberIn(0.001, MAX_TIMER_SEC),
    ),
    allowedHosts: Object.freeze(read("ALLOWED_HOSTS", [], parseAllowedHosts)),
    replicaId: read("REPLICA_ID", defaultReplicaId(), parseReplicaId),
  };
  if (config.maxBufferedBytes < config.maxMessageBytes) {
    // One message must always fit, or a largest-size call would wait for room that never comes.
    problems.push(
      `MAX_BUFFERED_BYTES must be at least MAX_MESSAGE_BYTES (${config.maxMessageBytes}), got ${config.maxBufferedBytes}`,
    );
  }
  if (problems.length > 0) {
    throw new AppError(
      Status.INVALID_ARGUMENT,
      `Invalid configuration:\n  ${problems.join("\n  ")}`,
    );
  }
  return Object.freeze(config);
}

function parsePort(value: string): number {
  return integerIn(0, 65535)(value);
}

function integerIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const number = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(number >= min && number <= max)) {
      throw new Error(`must be a whole number from ${min} to ${max}`);
    }
    return number;
  };
}

function numberIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const number = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
    if (!(number >= min && number <= max)) {
      throw new Error(`must be a number from ${min} to ${max}`);
    }
    return number;
  };
}

function parseHost(value: string): string {
  // A host name, an IPv4 address or an IPv6 address (optionally in brackets); never a URL.
  const bare = value.startsWith("[") && value.endsWith("]") ? value.slice(1, -1) : value;
  if (bare.includes(":")) {
    try {
      new URL(`http://[${bare}]/`);
      return bare;
    } catch {
      // Reported below.
    }
  } else if (/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(bare)) {
    return bare;
  }
  throw new Error("must be a host name or IP address");
}

function parseBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error("must be an absolute http:// or https:// URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error("must be an absolute http:// or https:// URL");
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new Error("must not carry credentials, a query or a fragment");
  }
  return url.href.replace(/\/+$/, "");
}

function parseOrigins(value: string): string[] {
  const origins = value.split(",").map((origin) => origin.trim()).filter((origin) => origin !== "");
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      // Reported below.
    }
    if (
      parsed === undefined || parsed.origin === "null" ||
      parsed.origin !== origin.replace(/\/$/, "")
    ) {
      throw new Error(
        `must be a comma-separated list of origins such as https://example.com (bad: ${origin})`,
      );
    }
  }
  return origins.map((origin) => origin.replace(/\/$/, ""));
}

function parseTrustedProxies(value: string): string[] {
  const entries = value.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
  for (const entry of entries) {
    if (parseAddressRange(entry) === undefined) {
      throw new Error(
        `must be a comma-separated list of IP addresses or CIDRs such as 10.0.0.0/8 (bad: ${entry})`,
      );
    }
  }
  return entries;
}

function parseAllowedHosts(value: string): string[] {
  const hosts = value.split(",").map((host) => host.trim().toLowerCase()).filter((host) =>
    host !== ""
  );
  for (const host of hosts) {
    if (!/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$/.test(host)) {
      throw new Error(
        `must be a comma-separated list of host names without ports, such as sales.example.com (bad: ${host})`,
      );
    }
  }
  return hosts;
}

function parseReplicaId(value: string): string {
  if (!REPLICA_ID.test(value)) {
    throw new Error(
      "must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    );
  }
  return value;
}

/**
 * The host name and process id: unique among live replicas whether they share a machine (pids
 * differ) or run in containers (host names differ). Characters a replica id cannot hold become
 * `-`; without permission to read the host name, `replica-<pid>`.
 */
export function defaultReplicaId(): string {
  let host: string;
  try {
    host = Deno.hostname();
  } catch {
    host = "replica";
  }
  const suffix = `-${Deno.pid}`;
  const safeHost = host.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 63 - suffix.length);
  return `${safeHost === "" ? "replica" : safeHost}${suffix}`;
}

function parseToken(value: string): string {
  // It travels in an HTTP header: visible ASCII only.
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw new Error("must contain only visible ASCII characters");
  }
  return value;
}
