/**
 * Dev mode: the reload channel in-process, and its absence under `start` on real sockets.
 * `deno task dev` itself, with Chromium, is tested in `dev_reload_browser_test.ts`.
 */

import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { startServer } from "../main.ts";
import { loopbackEnv } from "../_test_loopback_env.ts";
import { consistently } from "../_test_eventually.ts";
import type { IslandsManifest } from "./build.ts";
import { createDevReload, DEV_RELOAD_EVENTS_PATH, DEV_RELOAD_SCRIPT_PATH } from "./dev_reload.ts";
import { createWebHandler } from "./web_app.ts";
import { createFakeSalesService } from "./_test_fake_sales_service.ts";

const WEB_CONFIG = {
  grpcWebUrl: "",
  corsOrigins: [],
  maxMessageBytes: 64 << 20,
  maxUploadBytes: undefined,
};

/** Reads SSE text from `body` until it contains `expected`. */
async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  expected: string,
  sofar = "",
): Promise<string> {
  let text = sofar;
  while (!text.includes(expected)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Stream ended before ${JSON.stringify(expected)}: ${text}`);
    text += value;
  }
  return text;
}

Deno.test("createDevReload sends the revision only once its build is done", async () => {
  const build = Promise.withResolvers<IslandsManifest>();
  const devReload = createDevReload({ build: () => build.promise });
  try {
    const response = await devReload.handle(
      new Request(`http://localhost${DEV_RELOAD_EVENTS_PATH}`),
      DEV_RELOAD_EVENTS_PATH,
    );
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-store");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const first = await readUntil(reader, "\n\n");
    assert.equal(first, "retry: 250\n\n");
    assert.match(devReload.revision(), /-building$/);

    build.resolve({ islands: "islands-0123456789abcdef.js" });
    await devReload.ready;
    const text = await readUntil(reader, "data: ", first);
    const revision = (await readUntil(reader, "\n\n", text)).split("data: ")[1].trim();
    assert.equal(revision, devReload.revision());
    assert.match(revision, /^[0-9a-f]{8}-islands-0123456789abcdef\.js$/);
    assert.equal(devReload.islandsName(), "islands-0123456789abcdef.js");
    assert.equal(
      devReload.scriptUrl(),
      `${DEV_RELOAD_SCRIPT_PATH}?revision=${encodeURIComponent(revision)}`,
    );

    // close() ends the stream, so a graceful shutdown need not wait for it.
    devReload.close();
    assert.equal((await reader.read()).done, true);
  } finally {
    devReload.close();
  }
});

Deno.test("createDevReload serves the reload script, and 404 for other /_dev/ paths", async () => {
  const devReload = createDevReload({ build: () => Promise.resolve({ islands: "islands-ab.js" }) });
  await devReload.ready;
  const script = await devReload.handle(
    new Request(`http://localhost${devReload.scriptUrl()}`),
    DEV_RELOAD_SCRIPT_PATH,
  );
  assert.equal(script.status, 200);
  assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
  const code = await script.text();
  assert.match(code, /new EventSource\("\/_dev\/reload"\)/);
  assert.match(code, /location\.reload\(\)/);
  const other = await devReload.handle(new Request("http://localhost/_dev/other"), "/_dev/other");
  assert.equal(other.status, 404);
  await other.body?.cancel();
});

Deno.test("createWebHandler in dev mode links its own build and the reload script", async () => {
  const build = Promise.withResolvers<IslandsManifest>();
  const devReload = createDevReload({ build: () => build.promise });
  const handler = createWebHandler({
    service: createFakeSalesService().service,
    config: WEB_CONFIG,
    devReload,
  });
  // The page waits for the build: it must not link the bundle of the code before the change.
  let answered = false;
  const pending = handler(new Request("http://localhost/")).then((response) => {
    answered = true;
    return response;
  });
  await consistently(() => !answered, "the page to wait for the build", 50);
  assert.equal(answered, false, "page answered before the build was done");
  build.resolve({ islands: "islands-00000000feedbeef.js" });
  const html = await (await pending).text();
  assert.match(html, /<script type="module" src="\/static\/build\/islands-00000000feedbeef\.js">/);
  const revision = encodeURIComponent(devReload.revision());
  assert.ok(html.includes(`src="/_dev/reload.js?revision=${revision}"`), html);
  const events = await handler(new Request("http://localhost/_dev/reload"));
  assert.equal(events.status, 200);
  devReload.close();
  await events.body?.cancel();
});

Deno.test("createWebHandler in dev mode links no bundle after a failed build", async () => {
  const logged: string[] = [];
  const devReload = createDevReload({
    build: () => Promise.reject(new Error("Expected ';' at islands/UploadIsland.tsx:3:1")),
    logError: (message, error) => logged.push(`${message} ${error}`),
  });
  const handler = createWebHandler({
    service: createFakeSalesService().service,
    config: WEB_CONFIG,
    devReload,
  });
  const html = await (await handler(new Request("http://localhost/"))).text();
  assert.doesNotMatch(html, /static\/build\/islands-/);
  assert.match(html, /src="\/_dev\/reload\.js\?revision=[0-9a-f]{8}-failed"/);
  assert.equal(logged.length, 1);
  assert.match(logged[0], /island bundle failed.*Expected ';'/);
});

Deno.test("startServer without dev mode has no /_dev/ endpoint and no reload script", async () => {
  const storageDir = await Deno.makeTempDir({ prefix: "dev_reload_test_" });
  const server = await startServer(loadConfig(loopbackEnv(storageDir)), { log: () => {} });
  try {
    const base = `http://127.0.0.1:${server.web.port}`;
    for (const path of [DEV_RELOAD_EVENTS_PATH, DEV_RELOAD_SCRIPT_PATH]) {
      const response = await fetch(base + path);
      assert.equal(response.status, 404, path);
      assert.doesNotMatch(response.headers.get("content-type") ?? "", /event-stream|javascript/);
      await response.body?.cancel();
    }
    const html = await (await fetch(base + "/")).text();
    assert.match(html, /Sales Aggregator/);
    assert.doesNotMatch(html, /_dev|EventSource/);
  } finally {
    await server.shutdown(1000);
    await Deno.remove(storageDir, { recursive: true });
  }
});
