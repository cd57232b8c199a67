import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { createGrpcWebHandler } from "../server/web/grpc_web.ts";
import {
  createFakeSalesService,
  FAKE_RESULT_CSV,
} from "../server/web/testdata/fake_sales_service.ts";
import {
  createSalesClient,
  UploadError,
  uploadFile,
  type UploadProgress,
} from "./_upload_client.ts";

/** A CSV of `lines` lines with varying lengths, so chunk edges fall anywhere. */
function csvBlob(lines: number): Blob {
  let text = "Department Name,Date,Number of Sales\n";
  for (let i = 1; i < lines; i++) text += `Dept ${i % 7},2024-01-${(i % 28) + 1},${i * 13}\n`;
  return new Blob([text], { type: "text/csv" });
}

/**
 * A client whose fetch goes straight to the in-process gRPC-Web handler; `intercept` can fail or
 * drop a request before or after the server sees it.
 */
function setup(
  intercept?: (path: string, send: () => Promise<Response>) => Promise<Response>,
  chunkSize = 100,
) {
  const { service, log } = createFakeSalesService({ chunkSize });
  const handler = createGrpcWebHandler({ service });
  const client = createSalesClient("http://localhost:3000", {
    fetch: (input, init) => {
      const request = new Request(input, init);
      // Like a real fetch: an aborted request never reaches the server.
      const send = () =>
        request.signal.aborted
          ? Promise.reject(new DOMException("The operation was aborted", "AbortError"))
          : handler(request);
      return intercept ? intercept(new URL(request.url).pathname, send) : send();
    },
  });
  return { client, log };
}

async function committedBytes(chunks: Uint8Array<ArrayBuffer>[] | undefined): Promise<Uint8Array> {
  return new Uint8Array(await new Blob(chunks ?? []).arrayBuffer());
}

Deno.test("uploadFile sends the file as Blob-bodied chunks the server reassembles byte for byte", async () => {
  const { client, log } = setup();
  const file = csvBlob(50);
  const progress: UploadProgress[] = [];
  const summary = await uploadFile(client, file, { onProgress: (p) => progress.push(p) });
  assert.equal(summary.rows, 50);
  assert.equal(new TextDecoder().decode(summary.resultCsv), FAKE_RESULT_CSV);
  const [uploadId, chunks] = [...log.committed][0];
  assert.ok(uploadId);
  assert.equal(chunks.length, Math.ceil(file.size / 100));
  assert.deepEqual(await committedBytes(chunks), new Uint8Array(await file.arrayBuffer()));
  assert.equal(progress.at(-1)?.phase, "finishing");
  const uploading = progress.filter((p) => p.phase === "uploading" && p.sentBytes > 0);
  assert.equal(uploading.at(-1)?.sentBytes, file.size);
  assert.ok(uploading.every((p, i) => i === 0 || p.sentBytes > uploading[i - 1].sentBytes));
});

Deno.test("uploadFile handles chunks whose length needs a multi-byte varint", async () => {
  const { client, log } = setup(undefined, 300_000);
  const file = csvBlob(20_000);
  assert.ok(file.size > 300_000);
  await uploadFile(client, file);
  const chunks = [...log.committed.values()][0];
  assert.deepEqual(await committedBytes(chunks), new Uint8Array(await file.arrayBuffer()));
});

Deno.test("uploadFile retries a lost request and a lost reply at the same offset", async () => {
  let appends = 0;
  const { client, log } = setup(async (path, send) => {
    if (!path.endsWith("/AppendUpload")) return send();
    appends++;
    if (appends === 2) throw new TypeError("Failed to fetch"); // request never arrived
    if (appends === 4) {
      await send(); // the server committed, but the reply is lost
      return new Response("bad gateway", { status: 502 });
    }
    return send();
  });
  const file = csvBlob(40);
  const progress: UploadProgress[] = [];
  const summary = await uploadFile(client, file, {
    retryDelayMs: 1,
    onProgress: (p) => progress.push(p),
  });
  assert.equal(summary.rows, 40);
  const chunks = [...log.committed.values()][0];
  assert.deepEqual(await committedBytes(chunks), new Uint8Array(await file.arrayBuffer()));
  const retries = progress.filter((p) => p.phase === "retrying");
  assert.equal(retries.length, 2);
  assert.equal(retries[0].retry?.attempt, 2);
});

Deno.test("uploadFile gives up after its attempts with a message for people", async () => {
  let appends = 0;
  const { client } = setup((path, send) => {
    if (path.endsWith("/AppendUpload") && ++appends > 1) {
      return Promise.reject(new TypeError("Failed to fetch"));
    }
    return send();
  });
  await assert.rejects(
    () => uploadFile(client, csvBlob(40), { retryDelayMs: 1, attempts: 3 }),
    (error: unknown) => {
      assert.ok(error instanceof UploadError);
      assert.match(error.message, /could not be reached/);
      assert.match(error.message, /stopped after 100 B of/);
      return true;
    },
  );
  assert.equal(appends, 1 + 3);
});

Deno.test("uploadFile cancels on abort and tells the server", async () => {
  const controller = new AbortController();
  let appends = 0;
  const { client, log } = setup((path, send) => {
    if (path.endsWith("/AppendUpload") && ++appends === 2) controller.abort();
    return send();
  });
  await assert.rejects(
    () => uploadFile(client, csvBlob(40), { signal: controller.signal }),
    (error: unknown) => error instanceof UploadError && error.code === Code.Canceled,
  );
  // CancelUpload is sent without waiting; give it a turn of the event loop.
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(log.cancelled.length, 1);
});

Deno.test("uploadFile explains an expired upload", async () => {
  const { client } = setup((path, send) => {
    if (path.endsWith("/AppendUpload")) {
      const trailer = "grpc-status: 5\r\ngrpc-message: Upload%20expired\r\n";
      const bytes = new TextEncoder().encode(trailer);
      const frame = new Uint8Array(5 + bytes.length);
      frame[0] = 0x80;
      new DataView(frame.buffer).setUint32(1, bytes.length);
      frame.set(bytes, 5);
      return Promise.resolve(
        new Response(frame, { headers: { "content-type": "application/grpc-web+proto" } }),
      );
    }
    return send();
  });
  await assert.rejects(
    () => uploadFile(client, csvBlob(10)),
    /no longer has this upload/,
  );
});
