/**
 * The gRPC server with the runtime's default HTTP/2 settings (no `tuneHttp2`), for the crash
 * regression test: the crash shows with those defaults. Prints `[gRPC] Listening on <host>:<port>`
 * like `main.ts` and exits 0 on SIGTERM.
 */

import { startGrpcServer } from "./grpc_server.ts";
import { createSalesService } from "../service/sales_service.ts";
import { ResultStore } from "../storage/result_store.ts";

const store = await ResultStore.open(Deno.env.get("STORAGE_DIR")!);
const service = createSalesService({ store, publicResultsUrl: "http://localhost:8080" });
const server = await startGrpcServer(service, { host: "127.0.0.1", port: 0, tuneHttp2: false });
console.log(`[gRPC] Listening on 127.0.0.1:${server.port}`);
Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  service.close();
  Deno.exit(0);
});
