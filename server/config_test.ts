import assert from "node:assert/strict";
import { defaultReplicaId, loadConfig } from "./config.ts";
import { AppError, Status } from "./errors.ts";

Deno.test("loadConfig applies the documented defaults to an empty environment", () => {
  const config = loadConfig({});
  assert.deepEqual({ ...config }, {
    grpcHost: "127.0.0.1",
    grpcPort: 50051,
    httpHost: "127.0.0.1",
    httpPort: 8080,
    storageDir: "./storage",
    publicResultsUrl: "http://localhost:8080",
    maxMessageBytes: 64 * 1024 * 1024,
    uploadIdleTimeoutSec: 900,
    webHost: "127.0.0.1",
    webPort: 3000,
    grpcWebUrl: "",
    corsOrigins: [],
    salesApiToken: undefined,
    metricsToken: undefined,
    salesUrlSecret: undefined,
    downloadUrlTtlSec: 3600,
    resultTtlHours: undefined,
    maxUploadBytes: undefined,
    maxConcurrentUploads: 64,
    maxDepartments: 1_000_000,
    maxBufferedBytes: 1024 * 1024 * 1024,
    uploadMaxLifetimeSec: 86400,
    maxUploadsPerClient: 16,
    trustedProxies: [],
    maxConcurrentStreams: 256,
    connectionIdleTimeoutSec: 300,
    allowedHosts: [],
    replicaId: defaultReplicaId(),
  });
});

Deno.test("loadConfig returns a frozen object", () => {
  const config = loadConfig({ CORS_ORIGINS: "https://a.example" });
  assert.deepEqual(Object.isFrozen(config), true);
  assert.deepEqual(Object.isFrozen(config.corsOrigins), true);
});

Deno.test("loadConfig parses every variable it is given", () => {
  const config = loadConfig({
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    HTTP_HOST: "[::1]",
    HTTP_PORT: "9090",
    STORAGE_DIR: "/var/lib/sales",
    PUBLIC_RESULTS_URL: "https://sales.example.com/base/",
    MAX_MESSAGE_BYTES: "1048576",
    UPLOAD_IDLE_TIMEOUT_SEC: "0.5",
    WEB_HOST: "localhost",
    WEB_PORT: "3001",
    GRPC_WEB_URL: "https://edge.example.com",
    CORS_ORIGINS: " https://a.example , http://localhost:3000/,",
    SALES_API_TOKEN: "s3cret-token",
    METRICS_TOKEN: "scrape-token",
    SALES_URL_SECRET: "another secret",
    DOWNLOAD_URL_TTL_SEC: "60",
    RESULT_TTL_HOURS: "24",
    MAX_UPLOAD_BYTES: "10737418240",
    MAX_CONCURRENT_UPLOADS: "8",
    MAX_DEPARTMENTS: "1000",
    MAX_BUFFERED_BYTES: "2097152",
    UPLOAD_MAX_LIFETIME_SEC: "3600",
    MAX_UPLOADS_PER_CLIENT: "4",
    TRUSTED_PROXIES: "10.0.0.0/8, ::1,192.168.1.7",
    MAX_CONCURRENT_STREAMS: "100",
    CONNECTION_IDLE_TIMEOUT_SEC: "10",
    ALLOWED_HOSTS: "Sales.example.com, localhost,[::1]",
    REPLICA_ID: "sales-2.eu_west",
  });
  assert.deepEqual({ ...config }, {
    grpcHost: "127.0.0.1",
    grpcPort: 0,
    httpHost: "::1",
    httpPort: 9090,
    storageDir: "/var/lib/sales",
    publicResultsUrl: "https://sales.example.com/base",
    maxMessageBytes: 1048576,
    uploadIdleTimeoutSec: 0.5,
    webHost: "localhost",
    webPort: 3001,
    grpcWebUrl: "https://edge.example.com",
    corsOrigins: ["https://a.example", "http://localhost:3000"],
    salesApiToken: "s3cret-token",
    metricsToken: "scrape-token",
    salesUrlSecret: "another secret",
    downloadUrlTtlSec: 60,
    resultTtlHours: 24,
    maxUploadBytes: 10737418240,
    maxConcurrentUploads: 8,
    maxDepartments: 1000,
    maxBufferedBytes: 2097152,
    uploadMaxLifetimeSec: 3600,
    maxUploadsPerClient: 4,
    trustedProxies: ["10.0.0.0/8", "::1", "192.168.1.7"],
    maxConcurrentStreams: 100,
    connectionIdleTimeoutSec: 10,
    allowedHosts: ["sales.example.com", "localhost", "[::1]"],
    replicaId: "sales-2.eu_west",
  });
});

Deno.test("loadConfig leaves the public results URL to the bound port when HTTP_PORT is 0", () => {
  assert.deepEqual(loadConfig({ HTTP_PORT: "0" }).publicResultsUrl, undefined);
  assert.deepEqual(loadConfig({ HTTP_PORT: "8081" }).publicResultsUrl, "http://localhost:8081");
});

Deno.test("loadConfig treats empty values as unset", () => {
  const config = loadConfig({ GRPC_PORT: "", SALES_API_TOKEN: "  ", MAX_UPLOAD_BYTES: "" });
  assert.deepEqual(config.grpcPort, 50051);
  assert.deepEqual(config.salesApiToken, undefined);
  assert.deepEqual(config.maxUploadBytes, undefined);
});

Deno.test("loadConfig rejects a bad value with a message naming the variable", async (t) => {
  const cases: [string, string][] = [
    ["GRPC_PORT", "abc"],
    ["GRPC_PORT", "65536"],
    ["HTTP_PORT", "-1"],
    ["WEB_PORT", "80.5"],
    ["GRPC_HOST", "http://localhost"],
    ["HTTP_HOST", "localhost:8080"],
    ["PUBLIC_RESULTS_URL", "localhost:8080"],
    ["PUBLIC_RESULTS_URL", "ftp://example.com"],
    ["PUBLIC_RESULTS_URL", "http://example.com/?a=1"],
    ["MAX_MESSAGE_BYTES", "0"],
    ["MAX_MESSAGE_BYTES", "64MiB"],
    ["MAX_MESSAGE_BYTES", "4294967296"],
    ["UPLOAD_IDLE_TIMEOUT_SEC", "0"],
    ["UPLOAD_IDLE_TIMEOUT_SEC", "soon"],
    ["GRPC_WEB_URL", "/relative"],
    ["CORS_ORIGINS", "https://a.example/path"],
    ["CORS_ORIGINS", "a.example"],
    ["SALES_API_TOKEN", "has space"],
    ["METRICS_TOKEN", "has space"],
    ["DOWNLOAD_URL_TTL_SEC", "0"],
    ["RESULT_TTL_HOURS", "-3"],
    ["MAX_UPLOAD_BYTES", "1e9"],
    ["MAX_CONCURRENT_UPLOADS", "0"],
    ["MAX_DEPARTMENTS", "many"],
    ["MAX_BUFFERED_BYTES", "1GiB"],
    ["UPLOAD_MAX_LIFETIME_SEC", "0"],
    ["REPLICA_ID", "a/b"],
    ["REPLICA_ID", "-leading-dash"],
    ["REPLICA_ID", "x".repeat(64)],
    ["MAX_UPLOADS_PER_CLIENT", "0"],
    ["TRUSTED_PROXIES", "10.0.0.0/33"],
    ["TRUSTED_PROXIES", "proxy.example.com"],
    ["MAX_CONCURRENT_STREAMS", "0"],
    ["CONNECTION_IDLE_TIMEOUT_SEC", "never"],
    ["ALLOWED_HOSTS", "example.com:8080"],
    ["ALLOWED_HOSTS", "https://example.com"],
  ];
  for (const [name, value] of cases) {
    await t.step(`${name}=${value}`, () => {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (error: unknown) =>
          error instanceof AppError && error.code === Status.INVALID_ARGUMENT &&
          error.message.includes(`${name} `) && error.message.includes(JSON.stringify(value)),
      );
    });
  }
});

Deno.test("loadConfig refuses a MAX_BUFFERED_BYTES smaller than one message", () => {
  assert.throws(
    () => loadConfig({ MAX_MESSAGE_BYTES: "2048", MAX_BUFFERED_BYTES: "1024" }),
    (error: unknown) =>
      error instanceof AppError && error.message.includes("MAX_BUFFERED_BYTES must be at least"),
  );
});

Deno.test("loadConfig reports every bad variable at once", () => {
  assert.throws(
    () => loadConfig({ GRPC_PORT: "x", MAX_DEPARTMENTS: "0" }),
    (error: unknown) =>
      error instanceof AppError && error.message.includes("GRPC_PORT") &&
      error.message.includes("MAX_DEPARTMENTS"),
  );
});

Deno.test("defaultReplicaId is the host name and process id, shaped as REPLICA_ID allows", () => {
  const id = defaultReplicaId();
  assert.ok(id.endsWith(`-${Deno.pid}`), id);
  assert.match(id, /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/);
  // The default passes the same validation as a configured value.
  assert.equal(loadConfig({ REPLICA_ID: id }).replicaId, id);
});
