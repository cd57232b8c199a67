import assert from "node:assert/strict";

const WORKER = new URL("./_aggregate_worker.ts", import.meta.url);

/** A worker of `parallel_aggregate.ts` driven message by message: each request gets its reply. */
async function withWorker(
  fn: (
    ask: (request: Record<string, unknown>) => Promise<Record<string, unknown>>,
  ) => Promise<void>,
): Promise<void> {
  const worker = new Worker(WORKER, { type: "module" });
  const replies: ((reply: Record<string, unknown>) => void)[] = [];
  const ready = Promise.withResolvers<void>();
  worker.onmessage = (event: MessageEvent<Record<string, unknown>>) => {
    if (event.data.type === "ready") ready.resolve();
    else replies.shift()?.(event.data);
  };
  try {
    await ready.promise;
    await fn((request) =>
      new Promise((resolve) => {
        replies.push(resolve);
        worker.postMessage(request);
      })
    );
  } finally {
    worker.terminate();
  }
}

Deno.test("aggregate worker takes the next part after one whose file could not be opened", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aggregate_worker_" });
  try {
    const path = `${dir}/sales.csv`;
    const csv = "Toys,2024-01-02,3\nToys,2024-01-03,4\n";
    await Deno.writeTextFile(path, csv);
    await withWorker(async (ask) => {
      const whole = { path, start: 0, end: csv.length, options: {} };
      assert.equal((await ask({ type: "start", ...whole })).type, "range");
      // A part dropped by its caller whose file was deleted before the worker reached it.
      const gone = await ask({ type: "start", ...whole, path: `${dir}/gone.csv` });
      assert.equal(gone.type, "error");
      assert.match(String(gone.message), /No such file|not found/i);
      // The next part must not trip over the file of the part before.
      assert.equal((await ask({ type: "start", ...whole })).type, "range");
      const result = await ask({ type: "finish" });
      assert.equal(result.type, "result");
      assert.equal((result.part as { rows: number }).rows, 2);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
