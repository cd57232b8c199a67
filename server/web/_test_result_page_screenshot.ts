/**
 * Takes the README's picture of a result page: two realistic samples (`deno task sample`)
 * uploaded together from the page in headless Chromium, the page reloaded from its address, and
 * a 1280x900 screenshot written to `docs/images/result-page.png` (or the path given). Run it by
 * hand after the page's look changes; no test runs it.
 *
 * ```sh
 * deno run -A server/web/_test_result_page_screenshot.ts [out.png]
 * ```
 *
 * @module
 */

import { chromium } from "playwright-core";
import { main as sample } from "../cli/sample.ts";
import { createSalesService } from "../service/sales_service.ts";
import { ResultStore } from "../storage/result_store.ts";
import { buildIslands } from "./build.ts";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./_test_chromium.ts";
import { createWebHandler } from "./web_app.ts";

const out = Deno.args[0] ?? new URL("../../docs/images/result-page.png", import.meta.url).pathname;
const scratch = await Deno.makeTempDir({ prefix: "result_page_screenshot_" });
try {
  const files = [`${scratch}/sales-2024-h1.csv`, `${scratch}/sales-2024-h2.csv`];
  await sample(["--rows", "40000", "--out", files[0]]);
  await sample(["--rows", "25000", "--out", files[1]]);
  const buildDir = new URL(`file://${scratch}/build/`);
  await buildIslands({ outDir: buildDir });
  const service = createSalesService({
    store: await ResultStore.open(`${scratch}/storage`),
    publicResultsUrl: "http://localhost:8080",
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createWebHandler({
      service,
      config: {
        grpcWebUrl: "",
        corsOrigins: [],
        maxMessageBytes: 64 << 20,
        maxUploadBytes: undefined,
      },
      buildDir,
    }),
  );
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({
      locale: "en-US",
      viewport: { width: 1280, height: 900 },
      colorScheme: "light",
    });
    await page.goto(`http://127.0.0.1:${server.addr.port}/`);
    await page.waitForSelector('[data-island="UploadIsland"][data-hydrated="true"]');
    await page.getByLabel("Choose a CSV file").setInputFiles(files);
    await page.getByRole("button", { name: "Upload" }).click();
    await page.waitForSelector("#results-heading");
    // The address is the result's page now: show it as anyone opening the link sees it.
    await page.reload();
    await page.waitForSelector('[data-island="ResultIsland"][data-hydrated="true"]');
    await page.screenshot({ path: out });
    console.log(`Wrote ${out} (${page.url()})`);
  } finally {
    await browser.close();
    await server.shutdown();
    service.close();
  }
} finally {
  await Deno.remove(scratch, { recursive: true });
}
