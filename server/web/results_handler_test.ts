import assert from "node:assert/strict";
import { ResultStore } from "../storage/result_store.ts";
import { createResultsHandler } from "./results_handler.ts";

const CSV = 'Department Name,Total Number of Sales\nToys,7\n"A, B",3\n';

async function setUp() {
  const dir = await Deno.makeTempDir({ prefix: "results_handler_test_" });
  const store = await ResultStore.open(dir);
  const resultId = await store.save(CSV);
  const logged: unknown[] = [];
  const handler = createResultsHandler({ store, logError: (_, error) => logged.push(error) });
  const get = (path: string, init?: RequestInit) =>
    handler(new Request(`http://localhost:8080${path}`, init));
  return {
    dir,
    store,
    resultId,
    get,
    logged,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("createResultsHandler serves a result with download headers", async () => {
  await using t = await setUp();
  const response = await t.get(`/results/${t.resultId}.csv`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("Content-Type"), "text/csv; charset=utf-8");
  assert.match(
    response.headers.get("Content-Disposition")!,
    /^attachment; filename="[0-9a-f]{32}\.csv"$/,
  );
  assert.equal(
    response.headers.get("Content-Length"),
    String(new TextEncoder().encode(CSV).length),
  );
  assert.match(response.headers.get("ETag")!, /^"[0-9a-f]{32}-[0-9a-f]+"$/);
  assert.ok(response.headers.get("Last-Modified"));
  assert.equal(await response.text(), CSV);
});

Deno.test("createResultsHandler answers HEAD with headers and no body", async () => {
  await using t = await setUp();
  const response = await t.get(`/results/${t.resultId}.csv`, { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(
    response.headers.get("Content-Length"),
    String(new TextEncoder().encode(CSV).length),
  );
  assert.equal(response.body, null);
});

Deno.test("createResultsHandler answers conditional requests with 304", async (t) => {
  await using s = await setUp();
  const path = `/results/${s.resultId}.csv`;
  const first = await s.get(path);
  await first.body?.cancel();
  const etag = first.headers.get("ETag")!;
  const lastModified = first.headers.get("Last-Modified")!;
  const cases: { name: string; headers: Record<string, string>; status: number }[] = [
    { name: "matching ETag", headers: { "If-None-Match": etag }, status: 304 },
    {
      name: "weak matching ETag in a list",
      headers: { "If-None-Match": `"x", W/${etag}` },
      status: 304,
    },
    { name: "star", headers: { "If-None-Match": "*" }, status: 304 },
    { name: "other ETag", headers: { "If-None-Match": '"other"' }, status: 200 },
    { name: "not modified since", headers: { "If-Modified-Since": lastModified }, status: 304 },
    {
      name: "modified since",
      headers: { "If-Modified-Since": new Date(Date.parse(lastModified) - 10_000).toUTCString() },
      status: 200,
    },
    {
      name: "If-None-Match wins over If-Modified-Since",
      headers: { "If-None-Match": '"other"', "If-Modified-Since": lastModified },
      status: 200,
    },
  ];
  for (const { name, headers, status } of cases) {
    await t.step(name, async () => {
      for (const method of ["GET", "HEAD"]) {
        const response = await s.get(path, { method, headers });
        assert.equal(response.status, status);
        assert.equal(response.headers.get("ETag"), etag);
        if (status === 304) assert.equal(response.body, null);
        await response.body?.cancel();
      }
    });
  }
});

Deno.test("createResultsHandler answers 404 for unknown ids and anything outside /results/", async (t) => {
  await using s = await setUp();
  await Deno.writeTextFile(`${s.dir}/secret.csv`, "secret");
  await Deno.writeTextFile(`${s.store.dir}/notes.txt`, "not a result");
  for (
    const path of [`/results/${"0".repeat(32)}.csv`, "/results/", "/results", "/", "/secret.csv"]
  ) {
    await t.step(path, async () => {
      const response = await s.get(path);
      assert.equal(response.status, 404);
      assert.doesNotMatch(await response.text(), /secret|Toys|notes/);
    });
  }
});

Deno.test("createResultsHandler answers 400 for malformed names and traversal attempts", async (t) => {
  await using s = await setUp();
  await Deno.writeTextFile(`${s.dir}/secret.csv`, "secret");
  const paths = [
    "/results/abc.csv",
    `/results/${s.resultId}`,
    `/results/${s.resultId.toUpperCase()}.csv`,
    `/results/${s.resultId}.csv.tmp`,
    "/results/notes.txt",
    "/results/..%2fsecret.csv",
    "/results/%2e%2e/secret.csv",
    "/results/%2e%2e%2fsecret.csv",
    `/results/.tmp-${s.resultId}`,
    `/results/x/${s.resultId}.csv`,
  ];
  for (const path of paths) {
    await t.step(path, async () => {
      const response = await s.get(path);
      assert.ok(response.status === 400 || response.status === 404, `status ${response.status}`);
      const text = await response.text();
      assert.doesNotMatch(text, /secret|Toys/);
    });
  }
  const response = await s.get("/results/abc.csv");
  assert.equal(response.status, 400);
  await response.body?.cancel();
});

Deno.test("createResultsHandler answers 405 with Allow for other methods", async () => {
  await using s = await setUp();
  for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    const response = await s.get(`/results/${s.resultId}.csv`, { method });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get("Allow"), "GET, HEAD");
    await response.body?.cancel();
  }
  // The result is still there.
  const response = await s.get(`/results/${s.resultId}.csv`);
  assert.equal(await response.text(), CSV);
});

Deno.test("createResultsHandler hides storage failures behind a generic 500", async () => {
  await using s = await setUp();
  // The results folder replaced by a file: opening a result fails with ENOTDIR, not NotFound.
  await Deno.remove(s.store.dir, { recursive: true });
  await Deno.writeTextFile(s.store.dir, "not a folder");
  const response = await s.get(`/results/${s.resultId}.csv`);
  assert.equal(response.status, 500);
  assert.equal(await response.text(), "Internal server error\n");
  assert.equal(s.logged.length, 1);
});
