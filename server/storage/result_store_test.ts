import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import { ResultStore } from "./result_store.ts";

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

Deno.test("ResultStore.open removes leftover temp files and keeps results", async () => {
  await withTempDir(async (dir) => {
    const first = await ResultStore.open(dir);
    const resultId = await first.save(CSV);
    await Deno.writeTextFile(`${dir}/results/.tmp-0123456789abcdef0123456789abcdef`, "Toys,");
    const reopened = await ResultStore.open(dir);
    assert.equal(reopened.removedTempFiles, 1);
    assert.deepEqual(await names(`${dir}/results`), [`${resultId}.csv`]);
    assert.equal(new TextDecoder().decode(await reopened.read(resultId)), CSV);
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
