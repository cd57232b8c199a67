/**
 * Uploads one CSV file with `UploadCSV` over gRPC-Web, the protocol the page speaks, and prints
 * the result id on stdout. `image_test.sh` runs it against the image's web port.
 *
 * `deno run --allow-read --allow-net deploy/_grpc_web_upload.ts <base URL> <file.csv>`
 *
 * @module
 */

import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { basename } from "node:path";
import { SalesService } from "../gen/sales_pb.ts";

/** Sends `file` to the gRPC-Web endpoint at `baseUrl` and resolves to the stored result's id. */
export async function uploadOverGrpcWeb(baseUrl: string, file: string): Promise<string> {
  const client = createClient(SalesService, createGrpcWebTransport({ baseUrl }));
  const response = await client.uploadCSV({
    data: await Deno.readFile(file),
    filename: basename(file),
  }, { timeoutMs: 30_000 });
  return response.resultId;
}

if (import.meta.main) {
  const [baseUrl, file] = Deno.args;
  if (baseUrl === undefined || file === undefined) {
    console.error(
      "Usage: deno run --allow-read --allow-net deploy/_grpc_web_upload.ts <url> <file>",
    );
    Deno.exit(2);
  }
  console.log(await uploadOverGrpcWeb(baseUrl, file));
}
