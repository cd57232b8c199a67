import assert from "node:assert/strict";
import { ResultStore } from "./result_store.ts";
import { startResultSweeper } from "./result_sweeper.ts";
import { RecordingLogger } from "../_test_recording_logger.ts";

const CSV = "Department Name,Total Number of Sales\nToys,7\n";
const HOUR = 3_600_000;

Deno.test("startResultSweeper sweeps at start and on demand with its clock, and logs deletions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "result_sweeper_test_" });
  try {
    const store = await ResultStore.open(dir);
    const first = await store.save(CSV);
    const second = await store.save(CSV);
    const modified = Date.now();
    let now = modified + 30 * 60_000;
    const logger = new RecordingLogger();
    const lines = logger.entries;
    const sweeper = startResultSweeper(store, { maxAgeMs: HOUR, now: () => now, logger });
    try {
      // The sweep at start found nothing old enough.
      assert.equal(await sweeper.sweepNow(), 0);
      assert.equal(lines.length, 0);
      await Deno.utime(`${store.dir}/${first}.csv`, new Date(modified), new Date(modified));
      await Deno.utime(
        `${store.dir}/${second}.csv`,
        new Date(modified + HOUR),
        new Date(modified + HOUR),
      );
      now = modified + HOUR + 1000;
      assert.equal(await sweeper.sweepNow(), 1);
      assert.deepEqual(lines.map((entry) => [entry.level, entry.message]), [
        ["info", "[storage] Deleted 1 result(s) older than 1 h"],
      ]);
      assert.equal((await store.read(second)).length, CSV.length);
    } finally {
      await sweeper.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startResultSweeper logs a failed sweep and keeps going", async () => {
  const dir = await Deno.makeTempDir({ prefix: "result_sweeper_test_" });
  try {
    const store = await ResultStore.open(dir);
    await Deno.remove(store.dir, { recursive: true });
    const logger = new RecordingLogger();
    const lines = logger.entries;
    const sweeper = startResultSweeper(store, { maxAgeMs: HOUR, logger });
    try {
      assert.equal(await sweeper.sweepNow(), 0);
      assert.equal(lines[0].level, "error");
      assert.match(lines[0].message, /^\[storage\] Cannot delete old results: /);
      await Deno.mkdir(store.dir);
      const old = await store.save(CSV);
      await Deno.utime(`${store.dir}/${old}.csv`, new Date(0), new Date(0));
      const failures = lines.length;
      assert.equal(await sweeper.sweepNow(), 1);
      assert.equal(lines.length, failures + 1);
      assert.match(lines.at(-1)!.message, /Deleted 1 result/);
    } finally {
      await sweeper.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
