import assert from "node:assert/strict";
import { DownloadUrls } from "../service/download_url.ts";
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

/** A handler whose URLs are signed (SALES_URL_SECRET), with a clock the test moves. */
async function setUpSigned() {
  const dir = await Deno.makeTempDir({ prefix: "results_handler_test_" });
  const store = await ResultStore.open(dir);
  const resultId = await store.save(CSV);
  const clock = { now: Date.parse("2025-06-01T12:00:00Z") };
  const downloadUrls = new DownloadUrls({
    publicResultsUrl: "http://localhost:8080",
    secret: "results handler test secret",
    ttlSec: 60,
    now: () => clock.now,
  });
  const handler = createResultsHandler({ store, downloadUrls });
  const get = (url: string, init?: RequestInit) => handler(new Request(url, init));
  return {
    store,
    resultId,
    downloadUrls,
    clock,
    get,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("createResultsHandler serves a signed URL, with HEAD and conditional requests", async () => {
  await using s = await setUpSigned();
  const url = s.downloadUrls.urlFor(s.resultId);
  assert.match(url, /\?exp=\d+&sig=[\w-]{43}$/);
  const response = await s.get(url);
  assert.equal(response.status, 200);
  assert.equal(await response.text(), CSV);
  const head = await s.get(url, { method: "HEAD" });
  assert.equal(head.status, 200);
  const etag = response.headers.get("ETag")!;
  const conditional = await s.get(url, { headers: { "If-None-Match": etag } });
  assert.equal(conditional.status, 304);
});

Deno.test("createResultsHandler refuses missing, tampered and expired signatures with 403 and a reason", async (t) => {
  await using s = await setUpSigned();
  const url = new URL(s.downloadUrls.urlFor(s.resultId));
  const expiry = url.searchParams.get("exp")!;
  const signature = url.searchParams.get("sig")!;
  const otherId = await s.store.save(CSV);
  const base = (id: string) => `http://localhost:8080/results/${id}.csv`;
  const cases = [
    { name: "unsigned", url: base(s.resultId), reason: /^This download URL is not signed/ },
    { name: "no sig", url: `${base(s.resultId)}?exp=${expiry}`, reason: /not signed/ },
    {
      name: "signature of another result",
      url: `${base(otherId)}?exp=${expiry}&sig=${signature}`,
      reason: /^The signature of this download URL is not valid\n$/,
    },
    {
      name: "expiry moved later",
      url: `${base(s.resultId)}?exp=${Number(expiry) + 86_400}&sig=${signature}`,
      reason: /not valid/,
    },
    {
      name: "signature changed",
      url: `${base(s.resultId)}?exp=${expiry}&sig=${
        signature.replace(/^./, (c) => c === "x" ? "y" : "x")
      }`,
      reason: /not valid/,
    },
  ];
  for (const { name, url, reason } of cases) {
    await t.step(name, async () => {
      for (const method of ["GET", "HEAD"]) {
        const response = await s.get(url, { method });
        assert.equal(response.status, 403);
        assert.equal(response.headers.get("Content-Type"), "text/plain; charset=utf-8");
        if (method === "GET") {
          const text = await response.text();
          assert.match(text, reason);
          assert.doesNotMatch(text, /Toys/);
        }
      }
    });
  }
  await t.step("expired", async () => {
    s.clock.now = (Number(expiry) + 1) * 1000;
    const response = await s.get(url.href);
    assert.equal(response.status, 403);
    assert.equal(
      await response.text(),
      "This download URL expired at 2025-06-01T12:01:00.000Z: ask the service for a new one\n",
    );
  });
});

Deno.test("createResultsHandler checks the signature before saying whether a result exists", async () => {
  await using s = await setUpSigned();
  const unknownId = "0".repeat(32);
  // Unsigned: 403 for an unknown result as for a known one, so ids cannot be probed.
  const unsigned = await s.get(`http://localhost:8080/results/${unknownId}.csv`);
  assert.equal(unsigned.status, 403);
  await unsigned.body?.cancel();
  // Validly signed but gone (deleted, or swept): 404.
  const signed = await s.get(s.downloadUrls.urlFor(unknownId));
  assert.equal(signed.status, 404);
  assert.equal(await signed.text(), "Result not found\n");
  // A malformed name says nothing about any result: still 400, before the signature.
  const malformed = await s.get("http://localhost:8080/results/abc.csv");
  assert.equal(malformed.status, 400);
  await malformed.body?.cancel();
});
