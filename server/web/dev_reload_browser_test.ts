/**
 * `deno task dev` in a temp clone with Chromium: an island edited on disk reaches the served
 * bundle and the open page reloads onto it. Skipped with a notice where Chromium is missing, except
 * under `CI=true`, where that fails. Run by `deno task test:browser`, apart from the main suite: it
 * starts a watcher, a build and a browser, and takes seconds, not milliseconds.
 */

import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { loopbackEnv } from "../_test_loopback_env.ts";
import { eventually } from "../_test_eventually.ts";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./_test_chromium.ts";

const REPO = new URL("../../", import.meta.url);

/** How the test polls a server that restarts: an error (a refused fetch) means "not yet". */
const POLL_DEV_SERVER = { intervalMs: 50, retryErrors: true };

/** Copies what `deno task dev` needs into a fresh folder, leaving the build output behind. */
async function cloneRepository(): Promise<string> {
  const clone = await Deno.makeTempDir({ prefix: "dev_reload_clone_" });
  const skip = new Set(["static/build", "storage", ".cache", "test-artifacts"]);
  async function copy(relative: string): Promise<void> {
    if (skip.has(relative)) return;
    const from = new URL(relative, REPO);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(from);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    if (info.isDirectory) {
      await Deno.mkdir(`${clone}/${relative}`, { recursive: true });
      for await (const entry of Deno.readDir(from)) await copy(`${relative}/${entry.name}`);
    } else if (info.isFile) {
      await Deno.copyFile(from, `${clone}/${relative}`);
    }
  }
  const paths = [
    "deno.json",
    "deno.lock",
    "server",
    "routes",
    "islands",
    "components",
    "browser",
    "gen",
    "static",
  ];
  for (const path of [...paths, "proto"]) await copy(path);
  return clone;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

async function islandsUrlOf(base: string): Promise<string | undefined> {
  const html = await (await fetch(base + "/")).text();
  return html.match(/src="(\/static\/build\/islands-[0-9a-f]+\.js)"/)?.[1];
}

async function devTaskReloadsOnIslandEdit(): Promise<void> {
  const clone = await cloneRepository();
  const storageDir = await Deno.makeTempDir({ prefix: "dev_reload_storage_" });
  // A fixed port: the restarted server must answer where the page's EventSource reconnects.
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "dev"],
    cwd: clone,
    env: { ...loopbackEnv(storageDir), WEB_PORT: String(port), NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // Its own process group, so that the watcher and its children stop with it.
    detached: true,
  }).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) output += text;
  };
  const collecting = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  try {
    const oldBundle = await eventually(() => islandsUrlOf(base), "the first page with islands", {
      ...POLL_DEV_SERVER,
      timeoutMs: 15_000,
    })
      .catch((error) => {
        throw new Error(`${error.message}\n--- deno task dev ---\n${output}`);
      });
    const page = await browser.newPage();
    await page.goto(base + "/");
    await page.locator('[data-island="UploadIsland"][data-hydrated="true"]').waitFor();
    await page.evaluate(() => {
      (globalThis as unknown as Record<string, unknown>).__beforeEdit = true;
    });

    const marker = `edited-${crypto.randomUUID()}`;
    const island = `${clone}/islands/UploadIsland.tsx`;
    await Deno.writeTextFile(
      island,
      `${await Deno.readTextFile(
        island,
      )}\n(globalThis as Record<string, unknown>).__devReloadMarker = "${marker}";\n`,
    );
    const edited = Date.now();

    const newBundle = await eventually(
      async () => {
        const url = await islandsUrlOf(base);
        if (url === undefined || url === oldBundle) return undefined;
        const code = await (await fetch(base + url)).text();
        return code.includes(marker) ? url : undefined;
      },
      "the served bundle to change",
      { ...POLL_DEV_SERVER, timeoutMs: 5_000 },
    ).catch((error) => {
      throw new Error(`${error.message}\n--- deno task dev ---\n${output}`);
    });
    const bundleMs = Date.now() - edited;
    const oldGone = await fetch(base + oldBundle);
    await oldGone.body?.cancel();
    assert.equal(oldGone.status, 404, "the stale bundle is still served");

    // The open page reloads by itself onto the new bundle: the variable set before is gone.
    const reloadedWith = await eventually(
      () =>
        page.evaluate(() => {
          const scope = globalThis as unknown as Record<string, unknown>;
          return scope.__beforeEdit === undefined ? scope.__devReloadMarker : undefined;
        }),
      "the open page to reload",
      { ...POLL_DEV_SERVER, timeoutMs: 10_000 },
    );
    assert.equal(reloadedWith, marker);
    await page.locator('[data-island="UploadIsland"][data-hydrated="true"]').waitFor();
    const scripts = await page.locator('script[src^="/static/build/"]').evaluateAll((elements) =>
      elements.map((element) => element.getAttribute("src"))
    );
    assert.deepEqual(scripts, [newBundle]);
    console.log(`  bundle changed ${bundleMs} ms after the edit, page reloaded`);
  } finally {
    await browser.close();
    // Ctrl+C reaches the whole group: deno task, the watcher, and a build in progress.
    try {
      Deno.kill(-child.pid, "SIGINT");
    } catch {
      // Already gone.
    }
    const stopped = await Promise.race([
      child.status.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 5_000)),
    ]);
    if (!stopped) {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    }
    await collecting;
    await Deno.remove(clone, { recursive: true });
    await Deno.remove(storageDir, { recursive: true });
  }
}

function chromiumInstalled(): boolean {
  try {
    return Deno.statSync(CHROMIUM_PATH).isFile;
  } catch {
    return false;
  }
}

const DEV_TEST = "deno task dev in a temp clone: an island edit changes the served bundle within " +
  "5 s and the open page reloads";
if (!chromiumInstalled()) {
  const missing =
    `Chromium not found at ${CHROMIUM_PATH} (install it with \`apt-get install chromium\`)`;
  if (Deno.env.get("CI") === "true") {
    Deno.test(`${DEV_TEST}: Chromium must be installed under CI`, () => {
      throw new Error(`${missing}; CI must run the browser tests`);
    });
  } else {
    const notice = `${missing}: the dev reload browser test is skipped`;
    console.warn(`\n*** ${notice} ***\n`);
    Deno.test({ name: `${DEV_TEST} (SKIPPED: ${notice})`, ignore: true, fn() {} });
  }
} else {
  Deno.test({
    name: DEV_TEST,
    fn: devTaskReloadsOnIslandEdit,
  });
}
