import assert from "node:assert/strict";
import { SalesMetrics } from "../service/metrics.ts";
import { ResultStore } from "../storage/result_store.ts";
import { parsePrometheusText, sampleValue } from "../_test_prometheus_text.ts";
import { createMetricsHandler } from "./metrics_handler.ts";
import { createResultsHandler } from "./results_handler.ts";

const TOKEN = "scrape-t0ken";

async function withResultsHandler(
  options: { token?: string; allowedHosts?: string[]; metrics?: boolean },
  fn: (handler: (request: Request) => Promise<Response>, metrics: SalesMetrics) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "metrics_handler_test_" });
  try {
    const metrics = new SalesMetrics({ replicaId: "r-9", processMetrics: false });
    const handler = createResultsHandler({
      store: await ResultStore.open(dir),
      allowedHosts: options.allowedHosts,
      metrics: options.metrics === false
        ? undefined
        : { render: () => metrics.render(), token: options.token },
    });
    await fn((request) => handler(request), metrics);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function scrape(authorization?: string, init: RequestInit = {}): Request {
  const headers = new Headers(init.headers);
  if (authorization !== undefined) headers.set("authorization", authorization);
  return new Request("http://localhost:8080/metrics", { ...init, headers });
}

Deno.test("createResultsHandler serves /metrics as Prometheus text, open by default", async () => {
  await withResultsHandler({}, async (handler, metrics) => {
    metrics.resultsStored.inc(3);
    const response = await handler(scrape());
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    assert.equal(response.headers.get("cache-control"), "no-store");
    const samples = parsePrometheusText(await response.text());
    assert.equal(sampleValue(samples, "sales_results_stored_total"), 3);
    assert.equal(sampleValue(samples, "sales_replica_info", { replica: "r-9" }), 1);

    const head = await handler(scrape(undefined, { method: "HEAD" }));
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
  });
});

Deno.test("createResultsHandler refuses /metrics without METRICS_TOKEN when one is set", async (t) => {
  await withResultsHandler({ token: TOKEN }, async (handler) => {
    const cases: [string, string | undefined, RegExp][] = [
      ["no header", undefined, /Metrics require a token on this server/],
      ["wrong token", "Bearer not-the-token", /The metrics token is not valid/],
      ["a prefix of the token", `Bearer ${TOKEN.slice(0, -1)}`, /not valid/],
      ["not a bearer token", `Basic ${btoa("user:pass")}`, /Malformed authorization header/],
    ];
    for (const [name, authorization, reason] of cases) {
      await t.step(name, async () => {
        const response = await handler(scrape(authorization));
        assert.equal(response.status, 401);
        assert.match(response.headers.get("www-authenticate")!, /^Bearer /);
        assert.match(response.headers.get("content-type")!, /^text\/plain/);
        const text = await response.text();
        assert.match(text, reason);
        assert.equal(text.includes("sales_"), false);
      });
    }
    await t.step("the right token, any case of the scheme", async () => {
      for (const scheme of ["Bearer", "bearer"]) {
        const response = await handler(scrape(`${scheme} ${TOKEN}`));
        assert.equal(response.status, 200);
        assert.match(await response.text(), /sales_uploads_started_total/);
      }
    });
  });
});

Deno.test("createResultsHandler applies the Host check and methods to /metrics first", async () => {
  await withResultsHandler({ token: TOKEN, allowedHosts: ["sales.example"] }, async (handler) => {
    const misdirected = await handler(new Request("http://evil.example/metrics"));
    assert.equal(misdirected.status, 421);
    await misdirected.body?.cancel();
    const post = await handler(
      new Request("http://sales.example/metrics", {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
      }),
    );
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    await post.body?.cancel();
    const ok = await handler(
      new Request("http://sales.example/metrics", {
        headers: { authorization: `Bearer ${TOKEN}` },
      }),
    );
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  });
});

Deno.test("createResultsHandler has no /metrics when it is given no metrics", async () => {
  await withResultsHandler({ metrics: false }, async (handler) => {
    const response = await handler(scrape());
    assert.equal(response.status, 404);
    await response.body?.cancel();
  });
});

Deno.test("createMetricsHandler answers 500 without internals when rendering fails", async () => {
  const logged: unknown[] = [];
  const handler = createMetricsHandler({
    render: () => Promise.reject(new Error("secret detail")),
    logError: (_message, error) => logged.push(error),
  });
  const response = await handler(new Request("http://localhost/metrics"));
  assert.equal(response.status, 500);
  assert.equal((await response.text()).includes("secret"), false);
  assert.equal(logged.length, 1);
});
