import assert from "node:assert/strict";
import { DownloadUrlSigner, DownloadUrlVerifier } from "../service/download_url.ts";
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
  const secret = "results handler test secret";
  const now = () => clock.now;
  const downloadUrls = new DownloadUrlSigner({
    publicResultsUrl: "http://localhost:8080",
    secret,
    ttlSec: 60,
    now,
  });
  const handler = createResultsHandler({
    store,
    downloadUrls: new DownloadUrlVerifier({ secret, now }),
  });
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

const CSV_BYTES = new TextEncoder().encode(CSV);
const META = { rows: 3, badRows: 0, departments: 2, badRowSamples: [] };

/** A handler over a store holding one result uploaded as `filename`. */
async function withNamedResult(
  filename: string | undefined,
  fn: (get: (init?: RequestInit) => Promise<Response>, resultId: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "results_handler_test_" });
  try {
    const store = await ResultStore.open(dir);
    const resultId = await store.save(
      CSV,
      filename === undefined ? undefined : { filename, ...META },
    );
    const handler = createResultsHandler({ store, logError: () => {} });
    await fn(
      (init) => handler(new Request(`http://localhost:8080/results/${resultId}.csv`, init)),
      resultId,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createResultsHandler names downloads after the uploaded file, safely", async (t) => {
  const cases: { name: string; filename: string | undefined; expected: (id: string) => string }[] =
    [
      {
        name: "plain",
        filename: "sales.csv",
        expected: () => 'attachment; filename="sales.result.csv"',
      },
      { name: "gzip", filename: "x.csv.gz", expected: () => 'attachment; filename="x.result.csv"' },
      {
        name: "other extension",
        filename: "Q1.TXT",
        expected: () => 'attachment; filename="Q1.TXT.result.csv"',
      },
      {
        name: "non-ASCII",
        filename: "ventes d'été €.csv",
        expected: () =>
          `attachment; filename="ventes d'_t_ _.result.csv"; ` +
          `filename*=UTF-8''ventes%20d%27%C3%A9t%C3%A9%20%E2%82%AC.result.csv`,
      },
      {
        name: "quotes, control characters and folders",
        filename: 'C:\\Users\\x\\..\\"evil"\r\nSet-Cookie: a=b\x00.csv',
        expected: () => 'attachment; filename="_evil_Set-Cookie_ a=b.result.csv"',
      },
      {
        name: "path traversal",
        filename: "../../etc/passwd",
        expected: () => 'attachment; filename="passwd.result.csv"',
      },
      { name: "dots only", filename: "..", expected: (id) => `attachment; filename="${id}.csv"` },
      { name: "empty", filename: "", expected: (id) => `attachment; filename="${id}.csv"` },
      {
        name: "no metadata (older results)",
        filename: undefined,
        expected: (id) => `attachment; filename="${id}.csv"`,
      },
    ];
  for (const c of cases) {
    await t.step(c.name, () =>
      withNamedResult(c.filename, async (get, resultId) => {
        for (const method of ["GET", "HEAD"]) {
          const response = await get({ method });
          assert.equal(response.status, 200);
          assert.equal(response.headers.get("Content-Disposition"), c.expected(resultId));
          if (method === "GET") assert.equal(await response.text(), CSV);
        }
      }));
  }
});

Deno.test("createResultsHandler sends no-store and Accept-Ranges on every result response", async () => {
  await withNamedResult("sales.csv", async (get) => {
    const etag = (await get({ method: "HEAD" })).headers.get("ETag")!;
    const requests: [RequestInit, number][] = [
      [{}, 200],
      [{ method: "HEAD" }, 200],
      [{ headers: { Range: "bytes=0-3" } }, 206],
      [{ headers: { Range: "bytes=9999-" } }, 416],
      [{ headers: { "If-None-Match": etag } }, 304],
      [{ headers: { "If-Match": '"other"' } }, 412],
    ];
    for (const [init, status] of requests) {
      const response = await get(init);
      await response.body?.cancel();
      assert.equal(response.status, status, JSON.stringify(init));
      assert.equal(response.headers.get("Cache-Control"), "no-store", JSON.stringify(init));
      assert.equal(response.headers.get("Accept-Ranges"), "bytes", JSON.stringify(init));
    }
  });
});

Deno.test("createResultsHandler answers single byte ranges with 206 and Content-Range", async (t) => {
  const size = CSV_BYTES.length;
  const cases: [string, number, number][] = [
    ["bytes=0-9", 0, 9],
    ["bytes=10-", 10, size - 1],
    ["bytes=-5", size - 5, size - 1],
    ["bytes=-100000", 0, size - 1],
    ["bytes=5-100000", 5, size - 1],
    [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
    ["BYTES = 3 - 4", 3, 4],
  ];
  await withNamedResult("sales.csv", async (get) => {
    for (const [range, start, end] of cases) {
      await t.step(range, async () => {
        for (const method of ["GET", "HEAD"]) {
          const response = await get({ method, headers: { Range: range } });
          assert.equal(response.status, 206);
          assert.equal(response.headers.get("Content-Range"), `bytes ${start}-${end}/${size}`);
          assert.equal(response.headers.get("Content-Length"), String(end - start + 1));
          assert.equal(
            response.headers.get("Content-Disposition"),
            'attachment; filename="sales.result.csv"',
          );
          if (method === "GET") {
            assert.deepEqual(
              new Uint8Array(await response.arrayBuffer()),
              CSV_BYTES.subarray(start, end + 1),
            );
          } else {
            assert.equal(response.body, null);
          }
        }
      });
    }
  });
});

Deno.test("createResultsHandler answers 416 for ranges past the end, and 200 for what it ignores", async (t) => {
  const size = CSV_BYTES.length;
  await withNamedResult("sales.csv", async (get) => {
    for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, "bytes=-0"]) {
      await t.step(range, async () => {
        for (const method of ["GET", "HEAD"]) {
          const response = await get({ method, headers: { Range: range } });
          await response.body?.cancel();
          assert.equal(response.status, 416);
          assert.equal(response.headers.get("Content-Range"), `bytes */${size}`);
        }
      });
    }
    // Several ranges, other units and malformed headers get the whole file.
    for (const range of ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=x-", "bytes=-", "0-1"]) {
      await t.step(range, async () => {
        const response = await get({ headers: { Range: range } });
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("Content-Range"), null);
        assert.equal(await response.text(), CSV);
      });
    }
  });
});

Deno.test("createResultsHandler honours a range only when If-Range matches", async () => {
  await withNamedResult("sales.csv", async (get) => {
    const head = await get({ method: "HEAD" });
    const etag = head.headers.get("ETag")!;
    const lastModified = head.headers.get("Last-Modified")!;
    const ranged = async (ifRange: string) => {
      const response = await get({ headers: { Range: "bytes=4-", "If-Range": ifRange } });
      return [response.status, await response.text()];
    };
    assert.deepEqual(await ranged(etag), [206, CSV.slice(4)]);
    assert.deepEqual(await ranged(lastModified), [206, CSV.slice(4)]);
    // Another version, a weak tag (never good enough for ranges) or another date: the whole file.
    assert.deepEqual(await ranged('"0123-4"'), [200, CSV]);
    assert.deepEqual(await ranged(`W/${etag}`), [200, CSV]);
    assert.deepEqual(await ranged(new Date(0).toUTCString()), [200, CSV]);
  });
});

Deno.test("createResultsHandler answers If-Match and If-Unmodified-Since with 412 when they fail", async () => {
  await withNamedResult("sales.csv", async (get) => {
    const head = await get({ method: "HEAD" });
    const etag = head.headers.get("ETag")!;
    const status = async (headers: Record<string, string>, method = "GET") => {
      const response = await get({ method, headers });
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await status({ "If-Match": etag }), 200);
    assert.equal(await status({ "If-Match": `"a", ${etag}` }), 200);
    assert.equal(await status({ "If-Match": "*" }), 200);
    assert.equal(await status({ "If-Match": etag, Range: "bytes=0-0" }), 206);
    assert.equal(await status({ "If-Match": '"0123-4"' }), 412);
    assert.equal(await status({ "If-Match": '"0123-4"' }, "HEAD"), 412);
    // If-Match compares strongly: a weak tag never matches.
    assert.equal(await status({ "If-Match": `W/${etag}` }), 412);
    // A failed If-Match wins over a range and over If-None-Match.
    assert.equal(
      await status({ "If-Match": '"x"', Range: "bytes=0-0", "If-None-Match": etag }),
      412,
    );
    assert.equal(await status({ "If-Unmodified-Since": new Date(0).toUTCString() }), 412);
    assert.equal(
      await status({ "If-Unmodified-Since": new Date(Date.now() + 60_000).toUTCString() }),
      200,
    );
  });
});

/** Whether a curl binary is at hand for the interoperability test. */
const CURL = (() => {
  try {
    return new Deno.Command("curl", { args: ["--version"], stdout: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "createResultsHandler lets curl -C - resume a download over a real socket",
  ignore: !CURL,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "results_handler_curl_test_" });
    const store = await ResultStore.open(dir);
    const lines = ["Department Name,Total Number of Sales"];
    for (let i = 0; i < 20_000; i++) lines.push(`Dept ${i},${i * 7}`);
    const csv = new TextEncoder().encode(lines.join("\n") + "\n");
    const resultId = await store.save(new TextDecoder().decode(csv), {
      filename: "big.csv",
      ...META,
    });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      createResultsHandler({ store }),
    );
    const url = `http://127.0.0.1:${server.addr.port}/results/${resultId}.csv`;
    const curl = async (...args: string[]) => {
      const output = await new Deno.Command("curl", {
        args: ["--silent", "--show-error", ...args, url],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
    };
    try {
      const out = `${dir}/download.csv`;
      // What an interrupted download leaves: the first part of the file.
      await Deno.writeFile(out, csv.subarray(0, 100_000));
      const resumed = await curl("-C", "-", "-o", out, "--write-out", "%{http_code}");
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(resumed.stdout, "206", "only the rest was sent");
      assert.deepEqual(await Deno.readFile(out), csv);
      // Resuming a download that is complete is a no-op, not an error.
      const again = await curl("-C", "-", "-o", out);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await Deno.readFile(out), csv);
      // curl -J names the file from Content-Disposition.
      const named = await new Deno.Command("curl", {
        args: ["--silent", "--show-error", "-O", "-J", url],
        cwd: dir,
        stderr: "piped",
      }).output();
      assert.equal(named.code, 0, new TextDecoder().decode(named.stderr));
      assert.deepEqual(await Deno.readFile(`${dir}/big.result.csv`), csv);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
