import assert from "node:assert/strict";
import { evaluatePreconditions, ifRangeHolds, notModifiedResponse } from "./conditional_get.ts";
import { serveStaticFile } from "./static_files.ts";

const ETAG = '"abc"';
const MODIFIED = new Date("2026-01-01T00:00:00.500Z");
const AT = "Thu, 01 Jan 2026 00:00:00 GMT";
const BEFORE = "Wed, 31 Dec 2025 23:59:59 GMT";

Deno.test("evaluatePreconditions follows RFC 9110's order and comparisons", async (t) => {
  const cases: { name: string; headers: Record<string, string>; outcome: 304 | 412 | undefined }[] =
    [
      { name: "no conditions", headers: {}, outcome: undefined },
      { name: "If-None-Match equal", headers: { "If-None-Match": ETAG }, outcome: 304 },
      { name: "If-None-Match weak", headers: { "If-None-Match": `"x", W/${ETAG}` }, outcome: 304 },
      { name: "If-None-Match star", headers: { "If-None-Match": "*" }, outcome: 304 },
      { name: "If-None-Match other", headers: { "If-None-Match": '"x"' }, outcome: undefined },
      { name: "If-Modified-Since same second", headers: { "If-Modified-Since": AT }, outcome: 304 },
      {
        name: "If-Modified-Since before",
        headers: { "If-Modified-Since": BEFORE },
        outcome: undefined,
      },
      {
        name: "If-Modified-Since invalid",
        headers: { "If-Modified-Since": "soon" },
        outcome: undefined,
      },
      {
        name: "If-None-Match wins over If-Modified-Since",
        headers: { "If-None-Match": '"x"', "If-Modified-Since": AT },
        outcome: undefined,
      },
      { name: "If-Match equal", headers: { "If-Match": ETAG }, outcome: undefined },
      { name: "If-Match weak never matches", headers: { "If-Match": `W/${ETAG}` }, outcome: 412 },
      { name: "If-Match other", headers: { "If-Match": '"x"' }, outcome: 412 },
      {
        name: "If-Unmodified-Since before",
        headers: { "If-Unmodified-Since": BEFORE },
        outcome: 412,
      },
      {
        name: "If-Unmodified-Since invalid",
        headers: { "If-Unmodified-Since": "x" },
        outcome: undefined,
      },
      {
        name: "If-Match wins over If-None-Match",
        headers: { "If-Match": '"x"', "If-None-Match": ETAG },
        outcome: 412,
      },
    ];
  for (const { name, headers, outcome } of cases) {
    await t.step(name, () => {
      const got = evaluatePreconditions(new Headers(headers), {
        etag: ETAG,
        lastModified: MODIFIED,
      });
      assert.equal(got, outcome);
    });
  }
  await t.step("dates are ignored without a Last-Modified", () => {
    const headers = new Headers({ "If-Modified-Since": AT, "If-Unmodified-Since": BEFORE });
    assert.equal(evaluatePreconditions(headers, { etag: ETAG }), undefined);
  });
});

Deno.test("ifRangeHolds accepts only the same strong ETag or the exact date", () => {
  const holds = (value?: string) =>
    ifRangeHolds(new Headers(value === undefined ? {} : { "If-Range": value }), {
      etag: ETAG,
      lastModified: MODIFIED,
    });
  assert.equal(holds(), true);
  assert.equal(holds(ETAG), true);
  assert.equal(holds(`W/${ETAG}`), false);
  assert.equal(holds(AT), true);
  assert.equal(holds(BEFORE), false);
});

Deno.test("notModifiedResponse keeps the validators and cache headers, not the body's", () => {
  const response = notModifiedResponse(
    new Headers({
      "Cache-Control": "no-store",
      "ETag": ETAG,
      "Last-Modified": AT,
      "Vary": "Accept-Encoding",
      "Content-Type": "text/csv",
      "Content-Length": "10",
    }),
  );
  assert.equal(response.status, 304);
  assert.equal(response.body, null);
  assert.equal(response.headers.get("Cache-Control"), "no-store");
  assert.equal(response.headers.get("ETag"), ETAG);
  assert.equal(response.headers.get("Last-Modified"), AT);
  assert.equal(response.headers.get("Vary"), "Accept-Encoding");
  assert.equal(response.headers.get("Content-Type"), null);
  assert.equal(response.headers.get("Content-Length"), null);
});

Deno.test("serveStaticFile answers conditional requests as the result server does", async () => {
  const root = new URL(`file://${await Deno.makeTempDir({ prefix: "static_files_test_" })}/`);
  try {
    await Deno.writeTextFile(new URL("app.css", root), "body { color: red }\n".repeat(100));
    const get = (headers: Record<string, string> = {}) =>
      serveStaticFile(new Request("http://localhost/app.css", { headers }), root, "app.css");
    const first = await get();
    await first.body?.cancel();
    const etag = first.headers.get("etag")!;
    assert.match(etag, /^"[0-9a-f]{24}"$/);
    for (const ifNoneMatch of [etag, `W/${etag}`, `"x", ${etag}`, "*"]) {
      const response = await get({ "if-none-match": ifNoneMatch });
      assert.equal(response.status, 304, ifNoneMatch);
      assert.equal(response.headers.get("etag"), etag);
      assert.equal(response.headers.get("cache-control"), "public, no-cache");
      assert.equal(response.body, null);
    }
    const other = await get({ "if-none-match": '"x"' });
    assert.equal(other.status, 200);
    await other.body?.cancel();
    const refused = await get({ "if-match": '"x"' });
    assert.equal(refused.status, 412);
    await refused.body?.cancel();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
