import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import { ChunkedUploads, parseUploadId } from "./chunked_uploads.ts";
import type { UploadRun } from "./upload_run.ts";
import type { UploadResponse } from "./types.ts";

/** A run that only counts bytes: replica routing does not depend on the aggregation. */
function fakeRun(): UploadRun {
  let bytes = 0;
  return {
    get rows() {
      return bytes;
    },
    badRows: 0,
    inputFailed: false,
    fileIndex: 0,
    moveToFile: () => Promise.resolve(),
    push(chunk: Uint8Array) {
      bytes += chunk.length;
      return Promise.resolve();
    },
    close() {},
  } as unknown as UploadRun;
}

function replica(replicaId: string | undefined, now = () => 0): ChunkedUploads {
  return new ChunkedUploads({
    replicaId,
    openRun: fakeRun,
    finishRun: (run) =>
      Promise.resolve({ resultId: "r", rows: run.rows } as unknown as UploadResponse),
    sweep: false,
    idleTimeoutMs: 1000,
    now,
  });
}

function notFound(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof AppError, String(error));
    assert.equal(error.code, Status.NOT_FOUND);
    assert.match(error.message, pattern);
    return true;
  };
}

const data = new TextEncoder().encode("Toys,2024-01-01,1\n");

Deno.test("ChunkedUploads issues upload ids that name the replica holding them", () => {
  const uploads = replica("sales-b.eu-7");
  const { uploadId } = uploads.start(["a.csv"], 0);
  assert.match(uploadId, /^[0-9a-f]{32}\.sales-b\.eu-7$/);
  assert.deepEqual(parseUploadId(uploadId).replicaId, "sales-b.eu-7");
  // Without a replica id, ids are the 32 hex characters earlier versions issued.
  assert.match(replica(undefined).start(["a.csv"], 0).uploadId, /^[0-9a-f]{32}$/);
  uploads.close();
});

Deno.test("ChunkedUploads answers a call for another replica's upload with NOT_FOUND naming both", async () => {
  const a = replica("sales-a");
  const b = replica("sales-b");
  const { uploadId } = a.start(["a.csv"], 0);
  const elsewhere = notFound(/is not on this replica \(sales-b\): replica sales-a holds it/);
  await assert.rejects(b.append(uploadId, 0, data), elsewhere);
  // finish() refuses an unknown id before it returns a promise.
  assert.throws(() => b.finish(uploadId), elsewhere);
  assert.throws(() => b.cancel(uploadId), elsewhere);
  // The holder is unaffected and finishes it.
  assert.equal((await a.append(uploadId, 0, data)).committedOffset, data.length);
  assert.equal((await a.finish(uploadId)).rows, data.length);
  a.close();
  b.close();
});

Deno.test("ChunkedUploads keeps expired, cancelled and lost uploads apart from misrouted ones", async () => {
  let clock = 0;
  const uploads = replica("sales-a", () => clock);
  const expired = uploads.start(["e.csv"], 0).uploadId;
  const cancelled = uploads.start(["c.csv"], 0).uploadId;
  uploads.cancel(cancelled);
  clock = 5000;
  await assert.rejects(uploads.append(expired, 0, data), notFound(/expired after 1 s/));
  await assert.rejects(uploads.append(cancelled, 0, data), notFound(/was cancelled/));
  // An id this replica issued but no longer knows (a restart in between).
  const lost = `${"0".repeat(32)}.sales-a`;
  await assert.rejects(
    uploads.append(lost, 0, data),
    notFound(/not found on replica sales-a: it was lost when the replica restarted/),
  );
  for (const id of [expired, cancelled, lost]) {
    await assert.rejects(uploads.append(id, 0, data), (error: Error) => {
      assert.doesNotMatch(error.message, /not on this replica/);
      return true;
    });
  }
  // A bare id (from a server without replica ids) is looked up here, as before.
  assert.throws(() => uploads.finish("1".repeat(32)), notFound(/^Upload 1{32} not found$/));
  uploads.close();
});

Deno.test("parseUploadId refuses ids that are neither hex nor hex plus a replica id", async (t) => {
  for (
    const bad of [
      "",
      "xyz",
      "0".repeat(31),
      `${"0".repeat(32)}.`,
      `${"0".repeat(32)}./etc`,
      `${"0".repeat(32)}.${"r".repeat(64)}`,
      `${"0".repeat(32)}-sales-a`,
    ]
  ) {
    await t.step(JSON.stringify(bad.slice(0, 40)), () => {
      assert.throws(() => parseUploadId(bad), (error: unknown) => {
        assert.ok(error instanceof AppError);
        assert.equal(error.code, Status.INVALID_ARGUMENT);
        assert.match(error.message, /^Malformed upload id/);
        return true;
      });
    });
  }
});
