/**
 * A client that starts two uploads and then hangs, to be killed by `server/faults_test.ts`:
 * a streaming upload (`UploadCSVStream`) that has sent the first half of a CSV, and a chunked
 * upload (`StartUpload`, `AppendUpload`) that has committed the first half of the same CSV. Each
 * half ends mid-record. Prints `stream sent <bytes>` and `chunked <uploadId> <committedOffset>`
 * once each is under way, then waits forever.
 *
 * Usage: `deno run -A server/_test_abandoned_upload_client.ts <host:port> <csv file>`
 *
 * @module
 */

import { GrpcSalesClient } from "./grpc/sales_client.ts";

const [address, csvPath] = Deno.args;
const bytes = await Deno.readFile(csvPath);
const half = Math.floor(bytes.length / 2) + 3;
const chunkBytes = 16 * 1024;
const client = new GrpcSalesClient(address);
const forever = new Promise<never>(() => {});

async function* halfThenHang(): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < half; at += chunkBytes) {
    yield bytes.subarray(at, Math.min(at + chunkBytes, half));
  }
  console.log(`stream sent ${half}`);
  await forever;
}
// Never settles: the process is killed first.
client.uploadStream(halfThenHang(), "killed-stream.csv").catch(() => {});

const { uploadId } = await client.startUpload("killed-chunked.csv", bytes.length);
let offset = 0;
while (offset < half) {
  const end = Math.min(offset + chunkBytes, half);
  offset = (await client.appendUpload(uploadId, offset, bytes.subarray(offset, end)))
    .committedOffset;
}
console.log(`chunked ${uploadId} ${offset}`);
await forever;
