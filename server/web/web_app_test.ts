import assert from "node:assert/strict";
import { createWebHandler } from "./web_app.ts";
import { createFakeSalesService, FAKE_RESULT_ID } from "./_test_fake_sales_service.ts";

const BASE = "http://localhost:3000";
const BUNDLE = "islands-0123456789abcdef.js";

/** A handler over a scratch build folder holding a tiny bundle, so no real build is needed. */
async function setup(
  config: { grpcWebUrl?: string; maxUploadBytes?: number; salesApiToken?: string } = {},
) {
  const buildDir = await Deno.makeTempDir({ prefix: "web_app_test_" });
  await Deno.writeTextFile(`${buildDir}/${BUNDLE}`, "console.log('islands');\n");
  await Deno.writeTextFile(`${buildDir}/manifest.json`, JSON.stringify({ islands: BUNDLE }));
  const handler = createWebHandler({
    service: createFakeSalesService().service,
    config: {
      grpcWebUrl: config.grpcWebUrl ?? "",
      corsOrigins: [],
      maxMessageBytes: 64 << 20,
      maxUploadBytes: config.maxUploadBytes,
      salesApiToken: config.salesApiToken,
    },
    buildDir: new URL(`file://${buildDir}/`),
  });
  return {
    handler,
    get: (path: string, init?: RequestInit) => handler(new Request(BASE + path, init)),
    [Symbol.asyncDispose]: () => Deno.remove(buildDir, { recursive: true }),
  };
}

Deno.test("createWebHandler renders the page on the server, readable before any script", async () => {
  await using web = await setup();
  const response = await web.get("/");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
  const html = await response.text();
  assert.ok(html.startsWith('<!DOCTYPE html><html lang="en">'));
  assert.match(html, /<h1>Total sales per department, from one CSV<\/h1>/);
  assert.match(html, /<noscript>.*deno task upload/s);
  assert.match(html, /What the file looks like/);
  // The island's markup is there, labelled, with its button disabled until a file is chosen.
  assert.match(html, /<label for="csv-file"/);
  assert.match(html, /<button type="button" class="button primary" disabled>Upload<\/button>/);
  assert.match(html, /role="status" aria-live="polite"/);
  assert.match(html, new RegExp(`<script type="module" src="/static/build/${BUNDLE}"></script>`));
  assert.match(html, /<link rel="stylesheet" href="\/static\/styles.css"\/>/);
});

Deno.test("createWebHandler wraps the island in a marker carrying its props", async () => {
  await using web = await setup({ grpcWebUrl: "http://localhost:8081", maxUploadBytes: 1000 });
  const html = await (await web.get("/")).text();
  const marker = html.match(/<div data-island="UploadIsland" data-island-props="([^"]*)"/);
  assert.ok(marker, "no island marker");
  const props = JSON.parse(marker[1].replaceAll("&quot;", '"').replaceAll("&amp;", "&"));
  assert.deepEqual(props, { grpcWebUrl: "http://localhost:8081", maxUploadBytes: 1000 });
});

Deno.test("createWebHandler sends a content security policy that allows the gRPC-Web origin", async () => {
  await using web = await setup({ grpcWebUrl: "http://localhost:8081/" });
  const csp = (await web.get("/")).headers.get("content-security-policy") ?? "";
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /connect-src 'self' http:\/\/localhost:8081(;|$)/);
});

Deno.test("createWebHandler serves static assets with types and cache headers", async (t) => {
  await using web = await setup();
  await t.step("stylesheet: revalidated by ETag", async () => {
    const response = await web.get("/static/styles.css");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/css; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "public, no-cache");
    assert.match(await response.text(), /\.dropzone/);
    const etag = response.headers.get("etag");
    assert.ok(etag);
    const again = await web.get("/static/styles.css", { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), "");
  });
  await t.step(
    "text assets compressed as the client accepts, with an ETag per encoding",
    async () => {
      const plain = await (await web.get("/static/styles.css")).text();
      const cases = [
        { accept: "gzip, deflate, br", encoding: "br", format: "brotli" },
        { accept: "gzip", encoding: "gzip", format: "gzip" },
        { accept: "br;q=0, gzip", encoding: "gzip", format: "gzip" },
      ] as const;
      for (const { accept, encoding, format } of cases) {
        const response = await web.get("/static/styles.css", {
          headers: { "accept-encoding": accept },
        });
        assert.equal(response.headers.get("content-encoding"), encoding, accept);
        assert.equal(response.headers.get("vary"), "Accept-Encoding");
        const etag = response.headers.get("etag") ?? "";
        assert.match(etag, new RegExp(`-${encoding}"$`));
        const compressed = new Uint8Array(await response.arrayBuffer());
        assert.equal(Number(response.headers.get("content-length")), compressed.length);
        assert.ok(compressed.length < plain.length / 2);
        const decompressed = await new Response(
          new Blob([compressed]).stream().pipeThrough(
            new DecompressionStream(format === "brotli" ? "brotli" as CompressionFormat : "gzip"),
          ),
        ).text();
        assert.equal(decompressed, plain);
        const again = await web.get("/static/styles.css", {
          headers: { "accept-encoding": accept, "if-none-match": etag },
        });
        assert.equal(again.status, 304);
      }
    },
  );
  await t.step("favicon", async () => {
    const response = await web.get("/favicon.svg");
    assert.equal(response.headers.get("content-type"), "image/svg+xml");
    await response.body?.cancel();
  });
  await t.step("bundle: immutable, JavaScript", async () => {
    const response = await web.get(`/static/build/${BUNDLE}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.equal(await response.text(), "console.log('islands');\n");
  });
  await t.step("HEAD: headers and length, no body", async () => {
    const response = await web.get(`/static/build/${BUNDLE}`, { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), "24");
    assert.equal(response.body, null);
  });
});

Deno.test("createWebHandler serves nothing outside the asset folders", async (t) => {
  await using web = await setup();
  for (
    const path of [
      "/static/build/manifest.json",
      "/static/%2e%2e/deno.json",
      "/static/..%2fdeno.json",
      "/static/.hidden",
      "/static/",
      "/static/build/",
      "/static/nope.css",
      "/deno.json",
      "/server/config.ts",
    ]
  ) {
    await t.step(path, async () => {
      const response = await web.get(path);
      assert.equal(response.status, 404);
      const body = await response.text();
      assert.doesNotMatch(body, /"tasks"|loadConfig/);
    });
  }
});

Deno.test("createWebHandler answers other paths with a 404 page and other methods with 405", async () => {
  await using web = await setup();
  const missing = await web.get("/nope");
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /Page not found.*<code>\/nope<\/code>/s);
  const post = await web.get("/", { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
});

Deno.test("createWebHandler routes gRPC-Web requests to the service", async () => {
  await using web = await setup();
  const message = new Uint8Array([0x0a, 32, ...new TextEncoder().encode(FAKE_RESULT_ID)]);
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  const response = await web.get("/sales.v1.SalesService/DownloadResult", {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto" },
    body: frame,
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/grpc-web+proto");
  const body = new Uint8Array(await response.arrayBuffer());
  assert.match(
    new TextDecoder().decode(body),
    /Department Name,Total Number of Sales.*grpc-status: ?0/s,
  );
});

Deno.test("createWebHandler answers 415 to a POST of another content type on an RPC path, with a reason", async (t) => {
  await using web = await setup();
  for (const type of ["text/plain", "application/grpc", "application/json", ""]) {
    await t.step(JSON.stringify(type), async () => {
      const response = await web.get("/sales.v1.SalesService/UploadCSV", {
        method: "POST",
        headers: type === "" ? {} : { "content-type": type },
        body: new Uint8Array(5),
      });
      assert.equal(response.status, 415);
      assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.match(await response.text(), /Unsupported content type .*application\/grpc-web/);
    });
  }
});

Deno.test("createWebHandler lists the methods a path allows in every 405", async (t) => {
  await using web = await setup();
  const cases = [
    { path: "/sales.v1.SalesService/UploadCSV", method: "GET", allow: "POST, OPTIONS" },
    { path: "/grpc.health.v1.Health/Check", method: "PUT", allow: "POST, OPTIONS" },
    { path: "/", method: "POST", allow: "GET, HEAD" },
    { path: "/static/styles.css", method: "DELETE", allow: "GET, HEAD" },
    { path: "/nope", method: "OPTIONS", allow: "GET, HEAD" },
  ];
  for (const { path, method, allow } of cases) {
    await t.step(`${method} ${path}`, async () => {
      const response = await web.get(path, { method });
      assert.equal(response.status, 405);
      assert.equal(response.headers.get("allow"), allow);
      assert.match(await response.text(), new RegExp(`Method ${method} not allowed for ${path}`));
    });
  }
  await t.step("OPTIONS on an RPC path says what it allows", async () => {
    const response = await web.get("/sales.v1.SalesService/UploadCSV", { method: "OPTIONS" });
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("allow"), "POST, OPTIONS");
  });
});

Deno.test("createWebHandler asks gRPC-Web calls for SALES_API_TOKEN, but not health checks", async () => {
  await using web = await setup({ salesApiToken: "t0ken" });
  const call = async (path: string, message: Uint8Array, headers: Record<string, string> = {}) => {
    const frame = new Uint8Array(5 + message.length);
    new DataView(frame.buffer).setUint32(1, message.length);
    frame.set(message, 5);
    const response = await web.get(path, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", ...headers },
      body: frame,
    });
    return new TextDecoder().decode(await response.arrayBuffer());
  };
  const download = new Uint8Array([0x0a, 32, ...new TextEncoder().encode(FAKE_RESULT_ID)]);
  const path = "/sales.v1.SalesService/DownloadResult";
  assert.match(await call(path, download), /grpc-status: ?16/);
  assert.match(await call(path, download, { authorization: "Bearer t0ken" }), /grpc-status: ?0/);
  // An empty HealthCheckRequest: the whole server. SERVING is field 1 = 1.
  const health = await call("/grpc.health.v1.Health/Check", new Uint8Array(0));
  assert.ok(health.includes("\x08\x01"), "status SERVING");
  assert.match(health, /grpc-status: ?0/);
});

Deno.test("createWebHandler serves every file of its routes folder, with the page headers", async () => {
  const routesDir = await Deno.makeTempDir({ prefix: "web_app_test_routes_" });
  const app = new URL("../../routes/_app.tsx", import.meta.url).href;
  const error = new URL("../../routes/_error.tsx", import.meta.url).href;
  await Deno.mkdir(`${routesDir}/r`);
  await Deno.writeTextFile(`${routesDir}/_app.tsx`, `export { default } from "${app}";\n`);
  await Deno.writeTextFile(
    `${routesDir}/_error.tsx`,
    `export { default, handler } from "${error}";\n`,
  );
  await Deno.writeTextFile(
    `${routesDir}/about.tsx`,
    `export const handler = { GET(ctx) { ctx.state.title = "About"; return { data: ctx.state.grpcWebUrl }; } };
export default ({ data }) => <main><h1>About {data}</h1></main>;
`,
  );
  await Deno.writeTextFile(
    `${routesDir}/r/[id].tsx`,
    `export const handler = { GET(ctx) { return Response.redirect(new URL("/about?id=" + ctx.params.id, ctx.url), 303); } };
`,
  );
  await Deno.writeTextFile(
    `${routesDir}/boom.tsx`,
    `export default () => { throw new Error("secret cause at /etc/passwd"); };\n`,
  );
  const errors: unknown[][] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => errors.push(args);
  try {
    const handler = createWebHandler({
      service: createFakeSalesService().service,
      config: {
        grpcWebUrl: "http://localhost:8081",
        corsOrigins: [],
        maxMessageBytes: 64 << 20,
        maxUploadBytes: undefined,
      },
      routesDir: new URL(`file://${routesDir}/`),
    });
    const get = (path: string, method = "GET") => handler(new Request(BASE + path, { method }));

    const about = await get("/about");
    assert.equal(about.status, 200);
    assert.equal(about.headers.get("cache-control"), "no-cache");
    assert.equal(about.headers.get("x-content-type-options"), "nosniff");
    assert.equal(about.headers.get("referrer-policy"), "no-referrer");
    assert.match(about.headers.get("content-security-policy") ?? "", /connect-src 'self' http:/);
    const html = await about.text();
    assert.match(html, /<title>About<\/title>.*<h1>About http:\/\/localhost:8081<\/h1>/s);

    const head = await get("/about", "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(head.body, null);

    const redirect = await get("/r/3f2a");
    assert.equal(redirect.status, 303);
    assert.equal(redirect.headers.get("location"), `${BASE}/about?id=3f2a`);
    const headRedirect = await get("/r/3f2a", "HEAD");
    assert.equal(headRedirect.status, 303);
    assert.equal(headRedirect.body, null);

    const missing = await get("/");
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /<title>Page not found<\/title>.*<code>\/<\/code>/s);

    assert.equal(errors.length, 0);
    const boom = await get("/boom");
    assert.equal(boom.status, 500);
    assert.equal(boom.headers.get("content-type"), "text/html; charset=utf-8");
    const text = await boom.text();
    assert.match(text, /<h1>Something went wrong<\/h1>/);
    assert.doesNotMatch(text, /secret|passwd/);
    assert.match(String(errors[0]?.[1]), /secret cause/, "the cause is logged");
  } finally {
    console.error = consoleError;
    await Deno.remove(routesDir, { recursive: true });
  }
});

Deno.test("createWebHandler answers HEAD on a page with its headers and no body", async () => {
  await using web = await setup();
  const response = await web.get("/", { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.equal(response.body, null);
});
