import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import { MAX_LARGEST_JSON_BYTES, ResultStore, STALE_TEMP_MS } from "./result_store.ts";

const CSV = "Department Name,Total Number of Sales\nToys,7\n";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "result_store_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
}

function isAppError(code: Status) {
  return (error: unknown) => error instanceof AppError && error.code === code;
}

Deno.test("ResultStore.save writes <id>.csv and leaves no temp file", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    const resultId = await store.save(CSV);
    assert.match(resultId, /^[0-9a-f]{32}$/);
    assert.deepEqual(await names(`${dir}/results`), [`${resultId}.csv`]);
    assert.equal(await Deno.readTextFile(`${dir}/results/${resultId}.csv`), CSV);
    assert.equal(new TextDecoder().decode(await store.read(resultId)), CSV);
  });
});

Deno.test("ResultStore.open removes its own leftover temp files and keeps results", async () => {
  await withTempDir(async (dir) => {
    const first = await ResultStore.open(dir, { replicaId: "a-1" });
    const resultId = await first.save(CSV);
    await Deno.writeTextFile(`${dir}/results/.tmp-${"0123456789abcdef".repeat(2)}-a-1`, "Toys,");
    const reopened = await ResultStore.open(dir, { replicaId: "a-1" });
    assert.equal(reopened.removedTempFiles, 1);
    assert.deepEqual(await names(`${dir}/results`), [`${resultId}.csv`]);
    assert.equal(new TextDecoder().decode(await reopened.read(resultId)), CSV);
  });
});

Deno.test("ResultStore.open keeps other replicas' temp files until they are an hour stale", async () => {
  await withTempDir(async (dir) => {
    await ResultStore.open(dir);
    const hex = "0123456789abcdef".repeat(2);
    // Another replica's write in progress, one of a replica whose id is a prefix of ours, and
    // one from before temp files named their replica.
    const others = [`.tmp-${hex}-b-2`, `.tmp-${hex}-a`, `.tmp-${hex}`];
    for (const name of others) await Deno.writeTextFile(`${dir}/results/${name}`, "Toys,");
    const now = Date.now();
    const restarted = await ResultStore.open(dir, { replicaId: "a-1", now });
    assert.equal(restarted.removedTempFiles, 0);
    assert.deepEqual(await names(`${dir}/results`), [...others].sort());
    // Still there a minute before the hour, gone past it.
    const early = await ResultStore.open(dir, {
      replicaId: "a-1",
      now: now + STALE_TEMP_MS - 60_000,
    });
    assert.equal(early.removedTempFiles, 0);
    const late = await ResultStore.open(dir, {
      replicaId: "a-1",
      now: now + STALE_TEMP_MS + 60_000,
    });
    assert.equal(late.removedTempFiles, 3);
    assert.deepEqual(await names(`${dir}/results`), []);
  });
});

Deno.test("ResultStore.saveChunks names its temp file with the replica id while it writes", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir, { replicaId: "sales-7.eu" });
    const seen: string[][] = [];
    async function* pieces() {
      yield new TextEncoder().encode("Department Name,Total Number of Sales\n");
      seen.push(await names(`${dir}/results`));
      yield new TextEncoder().encode("Toys,7\n");
    }
    const resultId = await store.saveChunks(pieces());
    assert.deepEqual(seen, [[`.tmp-${resultId}-sales-7.eu`]]);
    // A replica that starts now leaves that write alone; the writer itself would remove it.
    await Deno.writeTextFile(`${dir}/results/.tmp-${resultId}-sales-7.eu`, "Toys,");
    assert.equal((await ResultStore.open(dir, { replicaId: "sales-8" })).removedTempFiles, 0);
    assert.equal((await ResultStore.open(dir, { replicaId: "sales-7.eu" })).removedTempFiles, 1);
  });
});

Deno.test("ResultStore.sweep run by several replicas at once deletes each old result once", async () => {
  await withTempDir(async (dir) => {
    const replicas = await Promise.all(
      ["a", "b", "c"].map((replicaId) => ResultStore.open(dir, { replicaId })),
    );
    const ids = await Promise.all(Array.from({ length: 30 }, (_, i) => replicas[i % 3].save(CSV)));
    const inProgress = `${dir}/results/.tmp-${"f".repeat(32)}-b`;
    await Deno.writeTextFile(inProgress, "Toys,");
    const later = Date.now() + 10_000;
    const counts = await Promise.all(replicas.map((replica) => replica.sweep(1000, later)));
    assert.equal(counts.reduce((sum, count) => sum + count, 0), ids.length);
    // Temp files are never swept, whoever writes them.
    assert.deepEqual(await names(`${dir}/results`), [`.tmp-${"f".repeat(32)}-b`]);
  });
});

Deno.test("ResultStore.read tells malformed ids from unknown ones", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    await assert.rejects(store.read("0".repeat(32)), isAppError(Status.NOT_FOUND));
    await assert.rejects(store.read("../results/x"), isAppError(Status.INVALID_ARGUMENT));
    await assert.rejects(store.openResult("0".repeat(32)), isAppError(Status.NOT_FOUND));
    await assert.rejects(store.openResult("ZZ"), isAppError(Status.INVALID_ARGUMENT));
  });
});

Deno.test("ResultStore never reads outside the results folder", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    await Deno.writeTextFile(`${dir}/secret.csv`, "secret");
    for (
      const id of ["../secret", "..%2fsecret", "/etc/passwd", `${"0".repeat(32)}/../../secret`]
    ) {
      await assert.rejects(store.read(id), isAppError(Status.INVALID_ARGUMENT));
    }
  });
});

Deno.test("ResultStore.openResult reports size and modification time", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    const resultId = await store.save(CSV);
    const opened = await store.openResult(resultId);
    try {
      assert.equal(opened.size, new TextEncoder().encode(CSV).length);
      assert.ok(opened.modified.getTime() > 0);
    } finally {
      opened.file.close();
    }
  });
});

Deno.test("ResultStore.save fails with INTERNAL when the results folder is gone", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    await Deno.remove(store.dir, { recursive: true });
    await assert.rejects(store.save(CSV), isAppError(Status.INTERNAL));
  });
});

Deno.test("ResultStore.delete removes a result and ignores unknown ids", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    const resultId = await store.save(CSV);
    await store.delete(resultId);
    await store.delete(resultId);
    await assert.rejects(store.read(resultId), isAppError(Status.NOT_FOUND));
  });
});

Deno.test("ResultStore.sweep deletes results older than the limit and keeps the rest", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    const now = Date.parse("2025-06-01T12:00:00Z");
    const hour = 3_600_000;
    const old = await store.save(CSV);
    const borderline = await store.save(CSV);
    const fresh = await store.save(CSV);
    const results = `${dir}/results`;
    await Deno.utime(`${results}/${old}.csv`, new Date(now - 25 * hour), new Date(now - 25 * hour));
    await Deno.utime(
      `${results}/${borderline}.csv`,
      new Date(now - 24 * hour),
      new Date(now - 24 * hour),
    );
    await Deno.utime(`${results}/${fresh}.csv`, new Date(now - hour), new Date(now - hour));
    // Not results: an old write in progress and a stray file must survive any sweep.
    const temp = `.tmp-${"f".repeat(32)}`;
    await Deno.writeTextFile(`${results}/${temp}`, "Toys,");
    await Deno.utime(`${results}/${temp}`, new Date(0), new Date(0));
    await Deno.writeTextFile(`${results}/notes.txt`, "keep");
    await Deno.utime(`${results}/notes.txt`, new Date(0), new Date(0));

    assert.equal(await store.sweep(24 * hour, now), 1);
    await assert.rejects(store.read(old), isAppError(Status.NOT_FOUND));
    assert.deepEqual(
      await names(results),
      [temp, `${borderline}.csv`, `${fresh}.csv`, "notes.txt"].sort(),
    );
    assert.equal(await store.sweep(24 * hour, now), 0);
    assert.equal(await store.sweep(2 * hour, now), 1);
    assert.deepEqual(await names(results), [temp, `${fresh}.csv`, "notes.txt"].sort());
  });
});

Deno.test("ResultStore.saveChunks writes the pieces in order, or nothing when they fail", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    const encoder = new TextEncoder();
    const piece = new Uint8Array(64 * 1024);
    // One reused buffer, as a producer that writes each piece into the same memory would hand it.
    async function* pieces() {
      for (const text of ["Department Name,Total Number of Sales\n", "Toys,", "7\n"]) {
        piece.fill(0);
        const { written } = encoder.encodeInto(text, piece);
        yield piece.subarray(0, written);
      }
    }
    const resultId = await store.saveChunks(pieces());
    assert.equal(await Deno.readTextFile(`${dir}/results/${resultId}.csv`), CSV);
    function* failing() {
      yield encoder.encode("Department Name");
      throw new AppError(Status.RESOURCE_EXHAUSTED, "Too many departments");
    }
    await assert.rejects(store.saveChunks(failing()), isAppError(Status.RESOURCE_EXHAUSTED));
    assert.deepEqual(await names(`${dir}/results`), [`${resultId}.csv`]);
  });
});

const META = {
  filename: "ventes été.csv.gz",
  rows: 4,
  badRows: 1,
  departments: 2,
  badRowSamples: [{
    line: 3,
    reason: "invalid date",
    raw: 'Toys,2024-13-01,"1"',
    file: "ventes été.csv.gz",
    fileIndex: 0,
  }],
  files: [{ name: "ventes été.csv.gz", rows: 4, badRows: 1, departments: 2 }],
};

Deno.test("ResultStore.saveChunks writes metadata beside the result, each through its own temp file", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir, { replicaId: "r-1" });
    const seen: string[][] = [];
    async function* pieces() {
      yield new TextEncoder().encode(CSV);
      seen.push(await names(`${dir}/results`));
    }
    const before = Date.now();
    const resultId = await store.saveChunks(pieces(), META);
    // While the CSV was written only its temp file existed; the metadata came after, atomically.
    assert.deepEqual(seen, [[`.tmp-${resultId}-r-1`]]);
    assert.deepEqual(await names(`${dir}/results`), [`${resultId}.csv`, `${resultId}.json`]);
    const meta = await store.readMeta(resultId);
    assert.ok(meta);
    assert.ok(meta.createdAt.getTime() >= before - 1000 && meta.createdAt.getTime() <= Date.now());
    assert.deepEqual({ ...meta, createdAt: undefined }, { ...META, createdAt: undefined });
    const info = await store.info(resultId);
    assert.equal(info.size, new TextEncoder().encode(CSV).length);
    assert.deepEqual(info.meta, meta);
    // The file itself is the documented layout.
    const json = JSON.parse(await Deno.readTextFile(`${dir}/results/${resultId}.json`));
    assert.equal(json.version, 1);
    assert.equal(json.bad_rows, 1);
    assert.equal(json.filename, META.filename);
  });
});

Deno.test("ResultStore.open removes its own leftover metadata temp files, and keeps other replicas' fresh ones", async () => {
  await withTempDir(async (dir) => {
    await ResultStore.open(dir);
    const hex = "0123456789abcdef".repeat(2);
    await Deno.writeTextFile(`${dir}/results/.tmp-${hex}.json-a-1`, "{");
    await Deno.writeTextFile(`${dir}/results/.tmp-${hex}.json-b-2`, "{");
    const now = Date.now();
    assert.equal((await ResultStore.open(dir, { replicaId: "a-1", now })).removedTempFiles, 1);
    assert.deepEqual(await names(`${dir}/results`), [`.tmp-${hex}.json-b-2`]);
    const later = now + STALE_TEMP_MS + 60_000;
    assert.equal(
      (await ResultStore.open(dir, { replicaId: "a-1", now: later })).removedTempFiles,
      1,
    );
    assert.deepEqual(await names(`${dir}/results`), []);
  });
});

Deno.test("ResultStore.saveChunks leaves neither file when the CSV fails", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    function* failing() {
      yield new TextEncoder().encode("Department Name");
      throw new AppError(Status.RESOURCE_EXHAUSTED, "Too many departments");
    }
    await assert.rejects(store.saveChunks(failing(), META), isAppError(Status.RESOURCE_EXHAUSTED));
    assert.deepEqual(await names(`${dir}/results`), []);
  });
});

Deno.test("ResultStore serves results without metadata, and ignores unreadable metadata", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    const older = await store.save(CSV);
    assert.deepEqual(await names(`${dir}/results`), [`${older}.csv`]);
    assert.equal(await store.readMeta(older), undefined);
    const info = await store.info(older);
    assert.equal(info.meta, undefined);
    assert.equal(info.size, new TextEncoder().encode(CSV).length);
    for (const broken of ["{", '{"version":2}', '{"version":1,"filename":3}', "null"]) {
      await Deno.writeTextFile(`${dir}/results/${older}.json`, broken);
      assert.equal(await store.readMeta(older), undefined, broken);
    }
    await assert.rejects(store.info("f".repeat(32)), isAppError(Status.NOT_FOUND));
    await assert.rejects(store.info("../x"), isAppError(Status.INVALID_ARGUMENT));
    // Metadata without its CSV (a crash between the two renames) is no result.
    await Deno.writeTextFile(`${dir}/results/${"e".repeat(32)}.json`, "{}");
    await assert.rejects(store.info("e".repeat(32)), isAppError(Status.NOT_FOUND));
  });
});

Deno.test("ResultStore.sweep and delete remove a result's metadata with it", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    const results = `${dir}/results`;
    const now = Date.parse("2025-06-01T12:00:00Z");
    const hour = 3_600_000;
    const old = await store.save(CSV, META);
    const fresh = await store.save(CSV, META);
    const deleted = await store.save(CSV, META);
    // The CSV is old; its metadata, written a moment later, is just under the limit.
    await Deno.utime(`${results}/${old}.csv`, new Date(now - 25 * hour), new Date(now - 25 * hour));
    await Deno.utime(
      `${results}/${old}.json`,
      new Date(now - 23 * hour),
      new Date(now - 23 * hour),
    );
    // Orphaned metadata (its CSV never arrived) goes by its own age.
    const orphan = "d".repeat(32);
    await Deno.writeTextFile(`${results}/${orphan}.json`, "{}");
    await Deno.utime(`${results}/${orphan}.json`, new Date(0), new Date(0));
    for (const id of [fresh, deleted]) {
      for (const ext of ["csv", "json"]) {
        await Deno.utime(`${results}/${id}.${ext}`, new Date(now - hour), new Date(now - hour));
      }
    }
    assert.equal(await store.sweep(24 * hour, now), 1);
    assert.deepEqual(
      await names(results),
      [`${fresh}.csv`, `${fresh}.json`, `${deleted}.csv`, `${deleted}.json`].sort(),
    );
    await store.delete(deleted);
    assert.deepEqual(await names(results), [`${fresh}.csv`, `${fresh}.json`]);
    await store.delete(deleted);
  });
});

Deno.test("ResultStore keeps the largest departments in the metadata, and reads metadata without them", async () => {
  await withTempDir(async (dir) => {
    const store = await ResultStore.open(dir);
    const largest = {
      departments: [["=Sum", "9007199254740993"], ["Toys, Games", "7"]] as [string, string][],
      totalSales: "9007199254741000",
    };
    const kept = await store.save(CSV, { ...META, largest });
    assert.deepEqual((await store.readMeta(kept))?.largest, largest);
    const path = `${dir}/results/${kept}.json`;
    const json = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(json.largest, {
      total_sales: "9007199254741000",
      departments: [["=Sum", "9007199254740993"], ["Toys, Games", "7"]],
    });

    // Written before they were kept: the rest of the metadata as before, no largest.
    delete json.largest;
    await Deno.writeTextFile(path, JSON.stringify(json));
    const older = await store.readMeta(kept);
    assert.ok(older);
    assert.equal("largest" in older, false);
    assert.deepEqual({ ...older, createdAt: undefined }, { ...META, createdAt: undefined });

    // Unreadable ones are dropped alone: the counts and files still hold.
    for (const broken of [{}, { total_sales: "1", departments: [["a", "-1"]] }, [], "x"]) {
      await Deno.writeTextFile(path, JSON.stringify({ ...json, largest: broken }));
      const meta = await store.readMeta(kept);
      assert.equal(meta?.largest, undefined, JSON.stringify(broken));
      assert.equal(meta?.rows, META.rows);
    }

    // Names too long to keep: none are kept, and the metadata stays small.
    const long = "x".repeat(MAX_LARGEST_JSON_BYTES);
    const tooLong = await store.save(CSV, {
      ...META,
      largest: { departments: [[long, "1"]], totalSales: "1" },
    });
    assert.equal((await store.readMeta(tooLong))?.largest, undefined);
    assert.ok((await Deno.stat(`${dir}/results/${tooLong}.json`)).size < 10_000);
  });
});
