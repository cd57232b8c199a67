/**
 * The environment of a whole server on loopback with every port picked by the system, for tests
 * and benchmarks that start `server/main.ts` (in-process or as a child). Read the bound ports from
 * `startServer`'s result or the start-up lines.
 */
export function loopbackEnv(storageDir: string): Record<string, string> {
  return {
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: "0",
    WEB_HOST: "127.0.0.1",
    WEB_PORT: "0",
    STORAGE_DIR: storageDir,
  };
}
