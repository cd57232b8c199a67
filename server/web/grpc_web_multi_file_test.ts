/**
 * End to end over a real socket: the browser's gRPC-Web client (`uploadFiles`, connect's
 * transport and `fetch`) against the real web handler and SalesService on port 0, uploading
 * several files into one result in chunks that straddle the files' boundaries.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createGrpcWebSalesClient, uploadFiles } from "../../browser/upload_client.ts";
import { createSalesService } from "../service/sales_service.ts";
import { ResultStore } from "../storage/result_store.ts";
import { RecordingLogger } from "../_test_recording_logger.ts";
import { createWebHandler } from "./web_app.ts";

const HEADER = "Department Name,Date,Number of Sales\n";

Deno.test("uploadFiles over gRPC-Web on a real socket: several files make one result, each counted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "grpc_web_multi_file_test_" });
  const store = await ResultStore.open(dir);
  const service = createSalesService({ store, publicResultsUrl: "http://localhost:8080" });
  const logger = new RecordingLogger();
  const handler = createWebHandler({
    service,
    logger,
    config: {
      grpcWebUrl: "",
      corsOrigins: [],
      maxMessageBytes: 1 << 20,
      maxUploadBytes: undefined,
    },
    buildDir: new URL(`file://${dir}/build/`),
  });
  let appends = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    if (new URL(request.url).pathname.endsWith("/AppendUpload")) appends++;
    return handler(request);
  });
  try {
    const many = Array.from({ length: 40 }, (_, i) => `Dept ${i},2024-03-01,${i}\n`).join("");
    const files = [
      new File([`${HEADER}Toys,2024-01-02,3\nGarden,2024-13-01,1\n${many}`], "north.csv"),
      new File([""], "empty.csv"),
      new File([`${HEADER}Toys,2024-01-03,4\n"Books, used",2024-01-04,5\nBad row\n`], "south.csv"),
    ];
    const client = createGrpcWebSalesClient(`http://127.0.0.1:${server.addr.port}`);
    // Chunks of 64 bytes: most AppendUpload calls end mid-file, and some carry a file's end.
    const summary = await uploadFiles(client, files, { compress: false, maxChunkBytes: 64 });

    assert.deepEqual(summary.files, [
      { name: "north.csv", rows: 42, badRows: 1, departments: 41 },
      { name: "empty.csv", rows: 0, badRows: 0, departments: 0 },
      { name: "south.csv", rows: 3, badRows: 1, departments: 2 },
    ]);
    assert.equal(summary.rows, 45);
    assert.equal(summary.badRows, 2);
    assert.equal(summary.departments, 42);
    // Each sample names its file and its line in that file.
    assert.deepEqual(
      summary.badRowSamples.map(({ file, fileIndex, line, raw }) => [file, fileIndex, line, raw]),
      [["north.csv", 0, 3, "Garden,2024-13-01,1"], ["south.csv", 2, 4, "Bad row"]],
    );
    const expected = [
      "Department Name,Total Number of Sales",
      '"Books, used",5',
      ...Array.from({ length: 40 }, (_, i) => `Dept ${i},${i}`).sort(),
      "Toys,7",
    ].join("\n") + "\n";
    assert.equal(new TextDecoder().decode(summary.resultCsv), expected);
    assert.deepEqual(summary.resultCsv, await store.read(summary.resultId));
    assert.equal(summary.pagePath, `/r/${summary.resultId}`);
    assert.ok(appends > 10, `${appends} AppendUpload calls`);
    assert.deepEqual(logger.entries.filter((entry) => entry.level === "error"), []);
  } finally {
    await server.shutdown();
    service.close();
    await Deno.remove(dir, { recursive: true });
  }
});
