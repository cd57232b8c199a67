import assert from "node:assert/strict";
import { gunzipSync, gzipSync } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { AppendUploadRequestSchema, StartUploadRequestSchema } from "../gen/sales_pb.ts";
import { createGrpcWebHandler } from "../server/web/grpc_web.ts";
import { createFakeSalesService, FAKE_RESULT_CSV } from "../server/web/_test_fake_sales_service.ts";
import {
  createGrpcWebSalesClient,
  UploadError,
  uploadFile,
  uploadFiles,
  type UploadProgress,
} from "./upload_client.ts";
import { createSalesService } from "../server/service/sales_service.ts";
import { ResultStore } from "../server/storage/result_store.ts";
import { deflatedGzipMember, type MemberCompressor, pieceBytesFor } from "./gzip_members.ts";
import { eventually } from "../server/_test_eventually.ts";

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
  intercept?: (
    path: string,
    send: () => Promise<Response>,
    request: Request,
  ) => Promise<Response>,
  chunkSize = 100,
) {
  const { service, log } = createFakeSalesService({ chunkSize });
  const handler = createGrpcWebHandler({ service });
  const client = createGrpcWebSalesClient("http://localhost:3000", {
    fetch: (input, init) => {
      const request = new Request(input, init);
      // Like a real fetch: an aborted request never reaches the server.
      const send = () =>
        request.signal.aborted
          ? Promise.reject(new DOMException("The operation was aborted", "AbortError"))
          : handler(request);
      return intercept ? intercept(new URL(request.url).pathname, send, request) : send();
    },
  });
  return { client, log };
}

/**
 * The faults of the retry tests, by the number of the append: the 2nd request never arrives, the
 * 4th arrives and is committed but its reply is lost; the others are sent.
 */
async function loseSecondRequestAndFourthReply(
  append: number,
  send: () => Promise<Response>,
): Promise<Response> {
  if (append === 2) throw new TypeError("Failed to fetch"); // request never arrived
  if (append === 4) {
    await send(); // the server committed, but the reply is lost
    return new Response("bad gateway", { status: 502 });
  }
  return send();
}

async function committedBytes(chunks: Uint8Array<ArrayBuffer>[] | undefined): Promise<Uint8Array> {
  return new Uint8Array(await new Blob(chunks ?? []).arrayBuffer());
}

Deno.test("uploadFile sends the file as Blob-bodied chunks the server reassembles byte for byte", async () => {
  const { client, log } = setup();
  const file = csvBlob(50);
  const progress: UploadProgress[] = [];
  const summary = await uploadFile(client, file, {
    compress: false,
    onProgress: (p) => progress.push(p),
  });
  assert.equal(summary.rows, 50);
  assert.equal(summary.compressed, false);
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
  await uploadFile(client, file, { compress: false });
  const chunks = [...log.committed.values()][0];
  assert.deepEqual(await committedBytes(chunks), new Uint8Array(await file.arrayBuffer()));
});

Deno.test("uploadFile retries a lost request and a lost reply at the same offset", async () => {
  let appends = 0;
  const { client, log } = setup((path, send) => {
    if (!path.endsWith("/AppendUpload")) return send();
    return loseSecondRequestAndFourthReply(++appends, send);
  });
  const file = csvBlob(40);
  const progress: UploadProgress[] = [];
  const summary = await uploadFile(client, file, {
    compress: false,
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
    () => uploadFile(client, csvBlob(40), { compress: false, retryDelayMs: 1, attempts: 3 }),
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
    () => uploadFile(client, csvBlob(40), { compress: false, signal: controller.signal }),
    (error: unknown) => error instanceof UploadError && error.code === Code.Canceled,
  );
  // CancelUpload is sent without waiting for it.
  await eventually(() => log.cancelled.length > 0, "CancelUpload to be sent");
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

/** The gRPC-Web frame's message of a request body. */
async function messageOf(request: Request): Promise<Uint8Array> {
  return new Uint8Array(await request.clone().arrayBuffer()).subarray(5);
}

/** Whether a gzip member's first deflate block is a stored one (BTYPE 00). */
function isStoredMember(member: Uint8Array): boolean {
  return (member[10] & 0b110) === 0;
}

/** A compressor that deflates like the page's, after `delayMs`. */
function delayedCompressor(delayMs: number): () => MemberCompressor {
  return () => ({
    parallelism: 2,
    async compress(piece) {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return deflatedGzipMember(piece);
    },
    close() {},
  });
}

/** A compressor that deflates like the page's, taking `msPerKb` per 1,000 bytes of the slice. */
function pacedCompressor(msPerKb: number): () => MemberCompressor {
  return () => ({
    parallelism: 2,
    async compress(piece) {
      await new Promise((resolve) => setTimeout(resolve, (msPerKb * piece.size) / 1_000));
      return deflatedGzipMember(piece);
    },
    close() {},
  });
}

/** Waits as a link would that takes `msPerKb` per 1,000 bytes of `request`. */
async function travel(request: Request, msPerKb: number): Promise<void> {
  const bytes = (await request.clone().arrayBuffer()).byteLength;
  await new Promise((resolve) => setTimeout(resolve, (msPerKb * bytes) / 1_000));
}

/** A setup whose n-th AppendUpload (from 1) takes `msPerKb(n)` per 1,000 bytes sent. */
function pacedLink(msPerKb: number | ((append: number) => number), chunkSize: number) {
  let appends = 0;
  return setup(async (path, send, request) => {
    if (path.endsWith("/AppendUpload")) {
      appends++;
      await travel(request, typeof msPerKb === "number" ? msPerKb : msPerKb(appends));
    }
    return send();
  }, chunkSize);
}

Deno.test("uploadFile compresses by default: size unknown, offsets count gzip bytes", async () => {
  let declaredSize: bigint | undefined;
  const offsets: bigint[] = [];
  const { client, log } = setup(async (path, send, request) => {
    if (path.endsWith("/StartUpload")) {
      declaredSize = fromBinary(StartUploadRequestSchema, await messageOf(request)).size;
    }
    const append = path.endsWith("/AppendUpload") &&
      fromBinary(AppendUploadRequestSchema, await messageOf(request));
    if (append && append.uploadId === "upload-2") offsets.push(append.offset);
    // A link slow enough for the page's own compressor to win.
    if (append) await travel(request, 5);
    return send();
  }, 2_000);
  const file = csvBlob(3_000);
  const progress: UploadProgress[] = [];
  const summary = await uploadFile(client, file, {
    onProgress: (p) => progress.push(p),
  });
  // The first upload measured the link with one plain chunk, then was cancelled.
  assert.equal(log.cancelled.length, 1);
  const chunks = log.committed.get("upload-2");
  const wire = await committedBytes(chunks);
  assert.equal(declaredSize, 0n);
  assert.equal(summary.compressed, true);
  assert.equal(summary.wireBytes, wire.length);
  assert.ok(wire.length < file.size / 1.5, `${wire.length} of ${file.size}`);
  assert.deepEqual(new Uint8Array(gunzipSync(wire)), new Uint8Array(await file.arrayBuffer()));
  // Each offset is where the previous gzip member ended.
  let end = 0;
  assert.deepEqual(offsets, chunks!.map((chunk) => BigInt((end += chunk.length) - chunk.length)));
  assert.ok(chunks!.every((chunk) => chunk.length <= 2_000));
  // Progress follows the file; the wire's bytes are what the server acknowledged.
  const uploading = progress.filter((p) => p.phase === "uploading" && p.sentBytes > 0);
  assert.equal(uploading.at(-1)?.sentBytes, file.size);
  assert.equal(uploading.at(-1)?.wireBytes, wire.length);
  assert.ok(uploading.every((p, i) => i === 0 || p.sentBytes > uploading[i - 1].sentBytes));
  assert.ok(uploading.every((p) => p.compressed));
  assert.ok(uploading.at(-1)!.wireBytes < file.size / 2);
});

Deno.test("uploadFile sends a gzip file as it is, and a plain one with compress false", async (t) => {
  const text = await csvBlob(500).text();
  const cases = [
    { name: "gzip file", bytes: new Uint8Array(gzipSync(text)), options: {} },
    { name: "compress false", bytes: new TextEncoder().encode(text), options: { compress: false } },
  ];
  for (const { name, bytes, options } of cases) {
    await t.step(name, async () => {
      let declaredSize: bigint | undefined;
      const { client, log } = setup(async (path, send, request) => {
        if (path.endsWith("/StartUpload")) {
          declaredSize = fromBinary(StartUploadRequestSchema, await messageOf(request)).size;
        }
        return send();
      }, 1_000);
      const summary = await uploadFile(client, new Blob([bytes]), {
        ...options,
      });
      assert.equal(summary.compressed, false);
      assert.equal(declaredSize, BigInt(bytes.length));
      assert.deepEqual(await committedBytes([...log.committed.values()][0]), bytes);
    });
  }
});

Deno.test("uploadFile repeats a lost compressed chunk byte for byte at the same offset", async () => {
  const bodies = new Map<string, Uint8Array[]>();
  let appends = 0;
  const { client, log } = setup(async (path, send, request) => {
    if (!path.endsWith("/AppendUpload")) return send();
    const message = fromBinary(AppendUploadRequestSchema, await messageOf(request));
    await travel(request, 10);
    if (message.uploadId !== "upload-2") return send(); // the link's measure
    const key = `${message.offset}`;
    bodies.set(key, [...bodies.get(key) ?? [], message.data]);
    return loseSecondRequestAndFourthReply(++appends, send);
  }, 1_500);
  const file = csvBlob(1_000);
  // Slow deflating: members are still being made when the retries happen.
  const summary = await uploadFile(client, file, {
    retryDelayMs: 1,
    compressor: delayedCompressor(5),
  });
  const wire = await committedBytes(log.committed.get("upload-2"));
  assert.equal(summary.wireBytes, wire.length);
  assert.deepEqual(new Uint8Array(gunzipSync(wire)), new Uint8Array(await file.arrayBuffer()));
  const retried = [...bodies.values()].filter((sent) => sent.length > 1);
  assert.equal(retried.length, 2);
  for (const [first, second] of retried) assert.deepEqual(second, first);
});

Deno.test("uploadFile measures the link with the first chunk and compresses only a slow one", async (t) => {
  const file = csvBlob(2_000);
  await t.step("slow link: starts again compressed", async () => {
    // 8 KB take 40 ms: 200 kB/s.
    const { client, log } = pacedLink(5, 8_000);
    const summary = await uploadFile(client, file, {
      compressor: pacedCompressor(0),
    });
    assert.equal(summary.compressed, true);
    assert.deepEqual(log.cancelled, ["upload-1"]);
    assert.equal(log.committed.get("upload-1")?.length, 1);
    const wire = await committedBytes(log.committed.get("upload-2"));
    assert.deepEqual(new Uint8Array(gunzipSync(wire)), new Uint8Array(await file.arrayBuffer()));
  });
  await t.step("fast link: keeps going as it is", async () => {
    const { client, log } = pacedLink(0, 8_000);
    const summary = await uploadFile(client, file, {
      compressor: pacedCompressor(10),
    });
    assert.equal(summary.compressed, false);
    assert.deepEqual(log.cancelled, []);
    assert.deepEqual([...log.committed.keys()], ["upload-1"]);
    assert.deepEqual(
      await committedBytes(log.committed.get("upload-1")),
      new Uint8Array(await file.arrayBuffer()),
    );
  });
});

Deno.test("uploadFile deflates every slice when the compressors keep ahead of the link, and stores those they cannot", async (t) => {
  const file = csvBlob(6_000);
  // Times in ms per 1,000 bytes of what is sent (link) or of the slice (compressor).
  const cases = [
    { name: "slow link, quick compressor", linkMs: () => 2, deflateMs: 0, deflated: true },
    // Slow for the first chunk only, so that compressing is chosen, then fast.
    {
      name: "link faster than the compressor",
      linkMs: (append: number) => append === 1 ? 30 : 0,
      deflateMs: 10,
      deflated: false,
    },
  ];
  for (const { name, linkMs, deflateMs, deflated } of cases) {
    await t.step(name, async () => {
      const { client, log } = pacedLink(linkMs, 8_000);
      await uploadFile(client, file, { compressor: pacedCompressor(deflateMs) });
      const chunks = log.committed.get("upload-2")!;
      const slices = Math.ceil(file.size / pieceBytesFor(8_000));
      assert.ok(slices >= 15, `${slices} slices`);
      const stored = chunks.filter(isStoredMember).length;
      if (deflated) {
        assert.equal(stored, 0);
        // Members made ahead travel several to a request, each request up to the chunk size.
        assert.ok(chunks.length < slices / 2, `${chunks.length} requests for ${slices} slices`);
        assert.ok(chunks.every((chunk) => chunk.length <= 8_000));
      } else {
        // Once the link's new speed shows in the running average, every slice goes stored.
        assert.ok(stored >= chunks.length / 2, `${stored} of ${chunks.length} stored`);
        assert.ok(chunks.slice(-4).every(isStoredMember));
      }
      const wire = await committedBytes(chunks);
      assert.deepEqual(new Uint8Array(gunzipSync(wire)), new Uint8Array(await file.arrayBuffer()));
    });
  }
});

Deno.test("uploadFiles sends several files as one upload, each with its index and its own gzip detection", async () => {
  const dir = await Deno.makeTempDir({ prefix: "upload_files_test_" });
  const service = createSalesService({
    store: await ResultStore.open(dir),
    publicResultsUrl: "http://localhost:8080",
    chunkSize: 100,
  });
  try {
    const appends: { offset: bigint; fileIndex: number; bytes: number }[] = [];
    let started: { filename: string; filenames: string[] } | undefined;
    const handler = createGrpcWebHandler({ service });
    const client = createGrpcWebSalesClient("http://localhost:3000", {
      fetch: async (input, init) => {
        const request = new Request(input, init);
        const path = new URL(request.url).pathname;
        const body = new Uint8Array(await request.clone().arrayBuffer()).subarray(5);
        if (path.endsWith("/StartUpload")) started = fromBinary(StartUploadRequestSchema, body);
        if (path.endsWith("/AppendUpload")) {
          const append = fromBinary(AppendUploadRequestSchema, body);
          appends.push({
            offset: append.offset,
            fileIndex: append.fileIndex,
            bytes: append.data.length,
          });
        }
        return handler(request);
      },
    });
    const header = "Department Name,Date,Number of Sales\n";
    const northRows = Array.from({ length: 29 }, (_, i) => `Dept ${i % 7},2024-01-15,${i}\n`);
    const north = Object.assign(new Blob([header, ...northRows]), { name: "north.csv" });
    const south = Object.assign(
      new Blob([gzipSync(`${header}Garden,2024-01-02,5\nGarden,2023-02-29,1\n`)]),
      { name: "south.csv.gz" },
    );
    const west = Object.assign(new Blob([`${header}Toys,2024-01-02,7\n`]), { name: "west.csv" });
    const progress: UploadProgress[] = [];
    const summary = await uploadFiles(client, [north, south, west], {
      // Compressing would change the bytes counted below; the gzip file goes as it is anyway.
      compress: false,
      onProgress: (p) => progress.push(p),
    });

    assert.deepEqual(started?.filenames, ["north.csv", "south.csv.gz", "west.csv"]);
    assert.equal(started?.filename, "north.csv");
    // File indexes never go back, and offsets count every file's bytes one after another.
    const indexes = appends.map((append) => append.fileIndex);
    assert.deepEqual(indexes, [...indexes].sort());
    assert.deepEqual([...new Set(indexes)], [0, 1, 2]);
    let offset = 0n;
    for (const append of appends) {
      assert.equal(append.offset, offset);
      offset += BigInt(append.bytes);
    }
    assert.equal(Number(offset), north.size + south.size + west.size);

    assert.deepEqual(summary.files, [
      { name: "north.csv", rows: 29, badRows: 0, departments: 7 },
      { name: "south.csv.gz", rows: 2, badRows: 1, departments: 1 },
      { name: "west.csv", rows: 1, badRows: 0, departments: 1 },
    ]);
    assert.equal(summary.rows, 32);
    assert.deepEqual(
      summary.badRowSamples.map(({ line, file, fileIndex }) => ({ line, file, fileIndex })),
      [{ line: 3, file: "south.csv.gz", fileIndex: 1 }],
    );
    assert.equal(summary.pagePath, `/r/${summary.resultId}`);
    // Progress runs over the whole, file by file.
    const uploading = progress.filter((p) => p.phase === "uploading" && p.sentBytes > 0);
    assert.equal(uploading.at(-1)?.sentBytes, north.size + south.size + west.size);
    assert.equal(uploading.at(-1)?.fileIndex, 2);
    assert.ok(uploading.every((p, i) => i === 0 || p.sentBytes > uploading[i - 1].sentBytes));
  } finally {
    service.close();
    await Deno.remove(dir, { recursive: true });
  }
});
