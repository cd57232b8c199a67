/**
 * End to end in real headless Chromium: the page served by {@linkcode createWebHandler} on a real
 * socket, the island bundle built by `deno task build`'s code, and the real SalesService. Skipped
 * with a notice where Chromium is missing, except under `CI=true`, where that fails. Run by
 * `deno task test:browser`, apart from the main suite: it takes tens of seconds.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { aggregateInputFile } from "../aggregate/sales_input.ts";
import { formatResultCsv } from "../aggregate/_reference.ts";
import { withAuth } from "../service/auth.ts";
import { DownloadUrlSigner } from "../service/download_url.ts";
import { createSalesService, type SalesServiceHandle } from "../service/sales_service.ts";
import { ResultStore } from "../storage/result_store.ts";
import { buildIslands } from "./build.ts";
import { createWebHandler } from "./web_app.ts";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./_test_chromium.ts";
import { axeViolations } from "./_test_axe.ts";
import { eventually } from "../_test_eventually.ts";
import { seededRandom } from "../_test_mulberry32.ts";

const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url);
/** Small chunks so a few-megabyte file takes several AppendUpload calls. */
const CHUNK_SIZE = 256 * 1024;
/** The server's SALES_API_TOKEN while `access.requireToken` is on. */
const ACCESS_TOKEN = "browser-t0ken";
/** The server's SALES_URL_SECRET while `access.signPages` is on. */
const URL_SECRET = "browser-url-secret";
const PUBLIC_RESULTS_URL = "http://localhost:8080";

function chromiumInstalled(): boolean {
  try {
    return Deno.statSync(CHROMIUM_PATH).isFile;
  } catch {
    return false;
  }
}

/** A deterministic sales CSV: `rows` rows over `departments` departments, awkward names included. */
function salesCsv(rows: number, departments: number, seed = 1): string {
  const names = Array.from(
    { length: departments },
    (_, i) => i === 0 ? '"Toys, Games & ""Fun"""' : i === 1 ? "=Formula Dept" : `Department ${i}`,
  );
  const random = seededRandom(seed);
  const lines = ["Department Name,Date,Number of Sales"];
  for (let i = 0; i < rows; i++) {
    // Skewed so the largest departments clearly differ.
    const department = names[Math.floor(random() ** 2 * departments)];
    const day = String(1 + Math.floor(random() * 28)).padStart(2, "0");
    lines.push(`${department},2024-02-${day},${Math.floor(random() * 1000)}`);
  }
  return lines.join("\n") + "\n";
}

/** Holds matching requests until released, to catch an upload midway or lose a chunk. */
class RequestGate {
  #hold?: { path: string; after: number; seen: number };
  #release?: () => void;
  #held = Promise.withResolvers<void>();
  failNext?: { path: string; status: number };

  holdAfter(path: string, after: number): Promise<void> {
    this.#hold = { path, after, seen: 0 };
    this.#held = Promise.withResolvers<void>();
    return this.#held.promise;
  }

  /** Lets the held request go on, and every later one pass. */
  release(): void {
    this.#hold = undefined;
    this.#release?.();
    this.#release = undefined;
  }

  async pass(request: Request): Promise<Response | undefined> {
    const path = new URL(request.url).pathname;
    if (this.failNext && path.endsWith(this.failNext.path)) {
      const { status } = this.failNext;
      this.failNext = undefined;
      await request.body?.cancel();
      return new Response("Service unavailable", { status });
    }
    if (this.#hold && path.endsWith(this.#hold.path) && ++this.#hold.seen > this.#hold.after) {
      const released = new Promise<void>((resolve) => (this.#release = resolve));
      this.#held.resolve();
      await released;
    }
    return undefined;
  }
}

interface Fixture {
  browser: Browser;
  page: Page;
  baseUrl: string;
  service: SalesServiceHandle;
  gate: RequestGate;
  scratch: string;
  /**
   * While `requireToken`, the server requires {@linkcode ACCESS_TOKEN} (SALES_API_TOKEN) on every
   * RPC; while `signPages`, a server with {@linkcode URL_SECRET} (SALES_URL_SECRET) answers.
   */
  access: { requireToken: boolean; signPages: boolean };
}

async function withFixture(run: (fixture: Fixture) => Promise<void>): Promise<void> {
  const scratch = await Deno.makeTempDir({ prefix: "web_browser_test_" });
  const buildDir = new URL(`file://${scratch}/build/`);
  await buildIslands({ outDir: buildDir });
  const service = createSalesService({
    store: await ResultStore.open(`${scratch}/storage`),
    publicResultsUrl: PUBLIC_RESULTS_URL,
    chunkSize: CHUNK_SIZE,
  });
  // A second server, as startServer wires one with SALES_URL_SECRET set: its own results.
  const signedService = createSalesService({
    store: await ResultStore.open(`${scratch}/signed-storage`),
    publicResultsUrl: PUBLIC_RESULTS_URL,
    downloadUrls: new DownloadUrlSigner({
      publicResultsUrl: PUBLIC_RESULTS_URL,
      secret: URL_SECRET,
    }),
    chunkSize: CHUNK_SIZE,
  });
  const config = {
    grpcWebUrl: "",
    corsOrigins: [],
    maxMessageBytes: 64 << 20,
    maxUploadBytes: undefined,
  };
  const handler = createWebHandler({ service, config, buildDir });
  // Each handler imports routes/ and islands/ as it starts; one at a time, since Deno 2.9.3 once
  // panicked ("RefCell already borrowed" in its module map) with three importing at once.
  await (await handler(new Request("http://localhost/"))).body?.cancel();
  // The same service behind a token, as startServer wires it when SALES_API_TOKEN is set.
  const guardedHandler = createWebHandler({
    service: withAuth(service, ACCESS_TOKEN),
    config: { ...config, salesApiToken: ACCESS_TOKEN },
    buildDir,
  });
  const signedHandler = createWebHandler({
    service: signedService,
    config: { ...config, salesUrlSecret: URL_SECRET },
    buildDir,
  });
  await (await guardedHandler(new Request("http://localhost/"))).body?.cancel();
  const access = { requireToken: false, signPages: false };
  const gate = new RequestGate();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request, info) =>
      (await gate.pass(request)) ??
        (access.signPages ? signedHandler : access.requireToken ? guardedHandler : handler)(
          request,
          info,
        ),
  );
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  try {
    const context = await browser.newContext({
      locale: "en-US",
      viewport: { width: 1100, height: 900 },
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    await run({
      browser,
      page,
      baseUrl: `http://127.0.0.1:${server.addr.port}/`,
      service,
      gate,
      scratch,
      access,
    });
    // Failed requests we provoke on purpose log a console error; anything else is a defect.
    const unexpected = problems.filter((p) => !/503|Failed to load resource/.test(p));
    assert.deepEqual(unexpected, []);
  } finally {
    gate.release();
    await browser.close();
    await server.shutdown();
    service.close();
    signedService.close();
    await Deno.remove(scratch, { recursive: true });
  }
}

async function openPage(page: Page, baseUrl: string): Promise<void> {
  await page.goto(baseUrl);
  await page.waitForSelector('[data-island="UploadIsland"][data-hydrated="true"]');
}

async function chooseFile(page: Page, path: string): Promise<void> {
  // By its label, as a screen reader user would find it.
  await page.getByLabel("Choose a CSV file").setInputFiles(path);
}

async function saveScreenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: new URL(name, ARTIFACTS).pathname, fullPage: true });
}

/** Clicks the download link as a person would and returns the saved file's text. */
async function downloadResult(page: Page, expectedName: string): Promise<string> {
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByTestId("download-link").click(),
  ]);
  assert.equal(download.suggestedFilename(), expectedName);
  return await Deno.readTextFile(await download.path());
}

const formatCount = (value: number | bigint) => new Intl.NumberFormat("en-US").format(value);

if (!chromiumInstalled()) {
  const missing =
    `Chromium not found at ${CHROMIUM_PATH} (install it with \`apt-get install chromium\`)`;
  if (Deno.env.get("CI") === "true") {
    Deno.test("createWebHandler in Chromium: Chromium must be installed under CI", () => {
      throw new Error(`${missing}; CI must run the browser tests`);
    });
  } else {
    const notice = `${missing}: the browser tests are skipped`;
    console.warn(`\n*** ${notice} ***\n`);
    Deno.test({ name: `createWebHandler in Chromium (SKIPPED: ${notice})`, ignore: true, fn() {} });
  }
} else {
  Deno.test({
    name:
      "createWebHandler in Chromium: upload, results, sorting, download, bad rows, cancel, retry, access token",
    fn: (t) =>
      withFixture(async ({ page, baseUrl, service, gate, scratch, access }) => {
        // A failed step must not leave requests held for the next one.
        const step = (name: string, body: () => Promise<void>) =>
          t.step(name, async () => {
            try {
              await body();
            } finally {
              gate.release();
            }
          });
        await step("the page reads well and is labelled before and after hydration", async () => {
          await page.goto(baseUrl);
          assert.equal(
            await page.locator("h1").textContent(),
            "Total sales per department, from one CSV",
          );
          await page.waitForSelector('[data-island][data-hydrated="true"]');
          assert.ok(await page.getByRole("button", { name: "Upload" }).isDisabled());
          assert.equal(await page.getByRole("status").count(), 1);
          assert.deepEqual(await axeViolations(page), []);
          await saveScreenshot(page, "web_page_initial.png");
        });

        await t.step(
          "upload a generated CSV and see summary, chart, table and download",
          async () => {
            const csvPath = `${scratch}/sales.csv`;
            await Deno.writeTextFile(csvPath, salesCsv(60_000, 40));
            const expected = await aggregateInputFile(csvPath);
            const expectedCsv = formatResultCsv(expected.totals);
            assert.ok((await Deno.stat(csvPath)).size > 4 * CHUNK_SIZE);

            await openPage(page, baseUrl);
            await chooseFile(page, csvPath);
            assert.match(await page.getByTestId("file-info").textContent() ?? "", /sales\.csv/);
            await page.getByRole("button", { name: "Upload" }).click();
            await page.waitForSelector("#results-heading");
            // Focus moves to the results so keyboard and screen reader users land there.
            assert.equal(await page.evaluate(() => document.activeElement?.id), "results-heading");

            assert.equal(await page.getByTestId("summary-rows").textContent(), formatCount(60_000));
            assert.equal(await page.getByTestId("summary-bad-rows").textContent(), "0");
            assert.equal(await page.getByTestId("summary-departments").textContent(), "40");
            assert.match(await page.getByRole("status").textContent() ?? "", /Upload complete/);

            // The table starts with the largest department; sorting by name puts the quoted one first.
            const largest = [...expected.totals].sort((a, b) => (a[1] < b[1] ? 1 : -1))[0];
            const firstRow = () => page.locator("table.departments tbody tr").first();
            assert.equal(await firstRow().locator("td").first().textContent(), largest[0]);
            assert.equal(
              await firstRow().locator("td").nth(1).textContent(),
              formatCount(largest[1]),
            );
            await page.getByRole("button", { name: /^Department/ }).click();
            assert.equal(
              await page.locator("th[aria-sort]").first().getAttribute("aria-sort"),
              "ascending",
            );
            assert.equal(await firstRow().locator("td").first().textContent(), "=Formula Dept");
            assert.equal(await page.locator("table.departments tbody tr").count(), 40);
            assert.equal(await page.locator(".chart-bar").count(), 10);
            await saveScreenshot(page, "web_upload_results.png");

            // The download link returns exactly the aggregate command's bytes.
            assert.equal(await downloadResult(page, "sales.result.csv"), expectedCsv);
          },
        );

        await step(
          "compressing before sending gives the same result, and the setting is remembered",
          async () => {
            const csvPath = `${scratch}/compress.csv`;
            await Deno.writeTextFile(csvPath, salesCsv(60_000, 40, 7));
            const size = (await Deno.stat(csvPath)).size;
            const expected = formatResultCsv((await aggregateInputFile(csvPath)).totals);
            // A slow uplink (DevTools throttling, in bytes per second), so that compressing pays
            // and the page chooses it; on loopback it would send the file as it is.
            const devtools = await page.context().newCDPSession(page);
            await devtools.send("Network.enable");
            await devtools.send("Network.emulateNetworkConditions", {
              offline: false,
              latency: 0,
              downloadThroughput: -1,
              uploadThroughput: 2_000_000,
            });
            try {
              const results: string[] = [];
              for (const compress of [true, false]) {
                await openPage(page, baseUrl);
                const setting = page.getByRole("checkbox", { name: "Compress before sending" });
                // On by default, then as last set (remembered across page loads).
                assert.equal(await setting.isChecked(), true);
                await setting.setChecked(compress);
                await openPage(page, baseUrl);
                assert.equal(await setting.isChecked(), compress);
                await chooseFile(page, csvPath);
                await page.getByRole("button", { name: "Upload" }).click();
                await page.waitForSelector("#results-heading");
                assert.equal(
                  await page.getByTestId("summary-rows").textContent(),
                  formatCount(60_000),
                );
                const wire = page.getByTestId("summary-wire-bytes");
                if (compress) {
                  const wireBytes = Number(await wire.getAttribute("data-bytes"));
                  assert.ok(wireBytes > 0 && wireBytes < size / 2, `${wireBytes} of ${size}`);
                } else {
                  assert.equal(await wire.count(), 0);
                }
                results.push(await downloadResult(page, "compress.result.csv"));
                // Back on, so the next round starts from the default.
                await setting.setChecked(true);
              }
              assert.equal(results[0], expected);
              assert.equal(results[1], expected);
            } finally {
              await devtools.send("Network.emulateNetworkConditions", {
                offline: false,
                latency: 0,
                downloadThroughput: -1,
                uploadThroughput: -1,
              });
              await devtools.detach();
            }
            // The steps below count chunks and bytes of the file as it is.
            await page.getByRole("checkbox", { name: "Compress before sending" }).setChecked(false);
          },
        );

        await step("a lost chunk is retried at the same offset", async () => {
          const csvPath = `${scratch}/retry.csv`;
          await Deno.writeTextFile(csvPath, salesCsv(20_000, 12, 7));
          const expected = formatResultCsv((await aggregateInputFile(csvPath)).totals);
          await openPage(page, baseUrl);
          gate.failNext = { path: "/AppendUpload", status: 503 };
          await chooseFile(page, csvPath);
          await page.getByRole("button", { name: "Upload" }).click();
          await page.waitForSelector("#results-heading");
          assert.equal(gate.failNext, undefined, "the failure was never injected");
          assert.equal(await page.getByTestId("summary-rows").textContent(), formatCount(20_000));
          assert.equal(await downloadResult(page, "retry.result.csv"), expected);
        });

        await step("cancel an upload midway", async () => {
          const csvPath = `${scratch}/big.csv`;
          await Deno.writeTextFile(csvPath, salesCsv(80_000, 30, 3));
          await openPage(page, baseUrl);
          const held = gate.holdAfter("/AppendUpload", 2);
          await chooseFile(page, csvPath);
          await page.getByRole("button", { name: "Upload" }).click();
          await held;
          assert.equal(service.uploadsInProgress, 1);
          const progress = page.getByTestId("progress");
          await page.waitForFunction(() =>
            /Sent\s*524\.3 kB of/.test(
              document.querySelector("[data-testid=progress]")?.textContent ?? "",
            )
          );
          assert.match(
            await progress.textContent() ?? "",
            /Rows\s*[1-9][\d,]*\s*Speed\s*[\d.]+ [kMG]?B\/s/,
          );
          assert.equal(
            await page.locator("progress").getAttribute("value"),
            String(2 * CHUNK_SIZE),
          );
          await saveScreenshot(page, "web_upload_progress.png");
          // Focus moved to Cancel when Upload became disabled: Enter on it cancels.
          assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Cancel");
          await page.keyboard.press("Enter");
          gate.release();
          const notice = page.getByTestId("cancelled");
          await notice.waitFor();
          assert.match(
            await notice.textContent() ?? "",
            /Upload cancelled after .* of .*Nothing was saved/,
          );
          assert.equal(await page.locator("#results-heading").count(), 0);
          // CancelUpload reached the server and freed the upload.
          await eventually(() => service.uploadsInProgress === 0, "the upload to be freed");
          assert.equal(service.uploadsInProgress, 0);
          assert.ok(await page.getByRole("button", { name: "Upload" }).isEnabled());
          assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Upload");
        });

        await step("a file dropped on the drop zone is uploaded", async () => {
          await openPage(page, baseUrl);
          const dataTransfer = await page.evaluateHandle(() => {
            const transfer = new DataTransfer();
            const csv =
              "Department Name,Date,Number of Sales\nGarden,2024-03-01,4\nGarden,2024-03-02,5\n";
            transfer.items.add(new File([csv], "dropped.csv", { type: "text/csv" }));
            return transfer;
          });
          await page.dispatchEvent(".dropzone", "dragenter", { dataTransfer });
          assert.match(await page.locator(".dropzone").getAttribute("class") ?? "", /dragging/);
          await page.dispatchEvent(".dropzone", "drop", { dataTransfer });
          assert.match(await page.getByTestId("file-info").textContent() ?? "", /dropped\.csv/);
          await page.getByRole("button", { name: "Upload" }).click();
          await page.waitForSelector("#results-heading");
          assert.equal(await page.getByTestId("summary-rows").textContent(), "2");
          assert.equal(
            await page.locator("table.departments tbody td").nth(1).textContent(),
            "9",
          );
        });

        await step(
          "one elapsed time, right plurals, distinct chart labels; an error clears old results",
          async () => {
            const results = page.locator("#results-heading");
            await openPage(page, baseUrl);
            // One department, one good row and one bad row: every noun in the singular.
            const onePath = `${scratch}/one.csv`;
            await Deno.writeTextFile(
              onePath,
              "Department Name,Date,Number of Sales\nGarden,2024-03-01,4\nGarden,2023-02-29,5\n",
            );
            await chooseFile(page, onePath);
            await page.getByRole("button", { name: "Upload" }).click();
            await results.waitFor();
            const time = await page.getByTestId("summary-time").textContent();
            assert.match(time ?? "", /^[\d.]+ (s|min)/);
            assert.equal(await page.getByTestId("summary-elapsed").textContent(), time);
            const sentence = await page.getByTestId("summary-sentence").textContent() ?? "";
            assert.match(sentence, /: 1 good row in 1 department, 1 bad row skipped\.$/);
            assert.equal(
              await page.getByRole("status").textContent(),
              "Upload complete: 2 rows, 1 bad row, 1 department",
            );
            assert.equal(
              await page.locator(".table-footer").textContent(),
              "Showing the only department.",
            );

            // Ten totals a one-decimal label shows as 1.2B each.
            const bigPath = `${scratch}/big-totals.csv`;
            const bigRows = Array.from(
              { length: 10 },
              (_, i) => `Region ${i},2024-03-01,${1_200_000_000 + i * 3_700_000}`,
            );
            await Deno.writeTextFile(
              bigPath,
              ["Department Name,Date,Number of Sales", ...bigRows, ""].join("\n"),
            );
            await chooseFile(page, bigPath);
            await page.getByRole("button", { name: "Upload" }).click();
            await page.getByText("Results for big-totals.csv").waitFor();
            const labels = await page.locator(".chart-value").allTextContents();
            assert.equal(labels.length, 10);
            assert.equal(new Set(labels).size, 10, labels.join(" "));
            assert.equal(labels[0], "1.233B");
            assert.equal(
              await page.getByTestId("summary-elapsed").textContent(),
              await page.getByTestId("summary-time").textContent(),
            );
            await saveScreenshot(page, "web_distinct_labels.png");

            // Refused before sending: the old results go, the error stays alone.
            const emptyPath = `${scratch}/empty.csv`;
            await Deno.writeFile(emptyPath, new Uint8Array());
            await chooseFile(page, emptyPath);
            await page.getByRole("button", { name: "Upload" }).click();
            await page.getByTestId("error").waitFor();
            assert.equal(await results.count(), 0);
            assert.equal(await page.locator(".chart-value").count(), 0);

            // Refused by the server after results were shown: the same.
            await chooseFile(page, onePath);
            await page.getByRole("button", { name: "Upload" }).click();
            await results.waitFor();
            gate.failNext = { path: "/StartUpload", status: 400 };
            await page.getByRole("button", { name: "Upload" }).click();
            await page.getByTestId("error").waitFor();
            assert.equal(gate.failNext, undefined, "the failure was never injected");
            assert.equal(await results.count(), 0);
            await saveScreenshot(page, "web_error_clears_results.png");
          },
        );

        await step("a file that is not a CSV gets a readable error", async () => {
          const path = `${scratch}/photo.png`;
          await Deno.writeFile(path, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]));
          await openPage(page, baseUrl);
          await chooseFile(page, path);
          await page.getByRole("button", { name: "Upload" }).click();
          const alert = page.getByRole("alert");
          await alert.waitFor();
          assert.match(await alert.textContent() ?? "", /“photo\.png” is not a CSV file/);
        });

        await step("a file with bad rows lists them", async () => {
          const csvPath = `${scratch}/with-bad-rows.csv`;
          await Deno.writeTextFile(
            csvPath,
            [
              "Department Name,Date,Number of Sales",
              "Garden,2024-01-02,10",
              "Garden,2023-02-29,5",
              "Toys,2024-01-03,7",
              "Toys,2024-01-04,seven",
              "Books,2024-01-05",
              "Books,2024-01-06,12",
              "",
            ].join("\n"),
          );
          await openPage(page, baseUrl);
          await chooseFile(page, csvPath);
          await page.getByRole("button", { name: "Upload" }).click();
          await page.waitForSelector("#results-heading");
          assert.equal(await page.getByTestId("summary-rows").textContent(), "6");
          assert.equal(await page.getByTestId("summary-bad-rows").textContent(), "3");
          const badRows = page.locator("table.bad-rows tbody tr");
          assert.equal(await badRows.count(), 3);
          const lines = await badRows.locator("td:first-child").allTextContents();
          assert.deepEqual(lines, ["3", "5", "6"]);
          assert.equal(
            await badRows.nth(1).locator("td").nth(2).textContent(),
            "Toys,2024-01-04,seven",
          );
          for (const reason of await badRows.locator("td:nth-child(2)").allTextContents()) {
            assert.ok(reason.length > 0);
          }
          await saveScreenshot(page, "web_upload_finished.png");
        });

        await step(
          "several files dropped at once make one result, whose page survives a reload",
          async () => {
            await openPage(page, baseUrl);
            assert.deepEqual(await axeViolations(page), [], "the upload page");
            // Three files at once: a plain CSV, a gzip one (detected on its own), one with a
            // bad row. The first is large enough to take several chunks.
            const north = salesCsv(30_000, 20, 5);
            const dataTransfer = await page.evaluateHandle(async (north) => {
              const header = "Department Name,Date,Number of Sales\n";
              const south = `${header}Garden,2024-03-01,4\nToys,2024-03-02,6\n`;
              const gzipped = await new Response(
                new Blob([south]).stream().pipeThrough(new CompressionStream("gzip")),
              ).blob();
              const transfer = new DataTransfer();
              transfer.items.add(new File([north], "north.csv", { type: "text/csv" }));
              transfer.items.add(new File([gzipped], "south.csv.gz"));
              transfer.items.add(
                new File([`${header}Garden,2024-03-01,1\nGarden,2023-02-29,5\n`], "west.csv", {
                  type: "text/csv",
                }),
              );
              return transfer;
            }, north);
            await page.dispatchEvent(".dropzone", "drop", { dataTransfer });
            const info = await page.getByTestId("file-info").textContent() ?? "";
            assert.match(info, /^3 files · .*north\.csv, south\.csv\.gz, west\.csv$/);

            // Held after north.csv's first chunks: each file's progress and the whole's show.
            const held = gate.holdAfter("/AppendUpload", 2);
            await page.getByRole("button", { name: "Upload" }).click();
            await held;
            const perFile = page.getByTestId("file-progress").locator("li");
            await eventually(
              async () => await perFile.first().getAttribute("data-state") === "sending",
              "north.csv to be sending",
            );
            assert.equal(await perFile.count(), 3);
            assert.equal(await perFile.nth(2).getAttribute("data-state"), "waiting");
            assert.ok(Number(await page.locator("progress").getAttribute("value")) > 0);
            await saveScreenshot(page, "web_multi_file_progress.png");
            gate.release();

            await page.waitForSelector("#results-heading");
            assert.equal(
              await page.locator("#results-heading").textContent(),
              "Results for 3 files",
            );
            assert.equal(await page.getByTestId("summary-rows").textContent(), formatCount(30_004));
            assert.equal(await page.getByTestId("summary-bad-rows").textContent(), "1");
            const fileRows = page.getByTestId("files").locator("tbody tr");
            assert.deepEqual(await fileRows.locator("td:first-child").allTextContents(), [
              "north.csv",
              "south.csv.gz",
              "west.csv",
            ]);
            // The gzip file was read as CSV: its own two rows, no bad ones.
            assert.deepEqual(await fileRows.nth(1).locator("td").allTextContents(), [
              "south.csv.gz",
              "2",
              "0",
              "2",
            ]);
            // The address is the result's page now.
            const path = new URL(page.url()).pathname;
            assert.match(path, /^\/r\/[0-9a-f]{32}$/);
            const resultId = path.slice(3);
            assert.equal(
              await page.getByTestId("result-page-link").getAttribute("href"),
              path,
            );

            // Back shows the upload page again, Forward the result's page, as the address says.
            await page.goBack();
            await eventually(
              async () => await page.locator("#results-heading").count() === 0,
              "the upload page after Back",
            );
            await page.waitForSelector('[data-island="UploadIsland"][data-hydrated="true"]');
            await page.waitForLoadState("load");
            assert.equal(new URL(page.url()).pathname, "/");
            await page.goForward();
            await page.waitForSelector('[data-island="ResultIsland"][data-hydrated="true"]');
            assert.equal(new URL(page.url()).pathname, path);

            // A reload: the server renders the same result, and the table still sorts.
            await page.reload();
            await page.waitForSelector('[data-island="ResultIsland"][data-hydrated="true"]');
            assert.equal(await page.locator("h1").textContent(), "Saved result");
            assert.equal(await page.getByTestId("summary-rows").textContent(), formatCount(30_004));
            assert.equal(await page.getByTestId("summary-files").textContent(), "3");
            const badRow = page.locator("table.bad-rows tbody tr").first();
            assert.deepEqual(await badRow.locator("td").allTextContents(), [
              "3",
              await badRow.locator("td").nth(1).textContent() ?? "",
              "Garden,2023-02-29,5",
              "west.csv",
            ]);
            assert.equal(
              await page.getByTestId("download-link").getAttribute("href"),
              `${PUBLIC_RESULTS_URL}/results/${resultId}.csv`,
            );
            await page.getByRole("button", { name: /^Department/ }).click();
            assert.equal(
              await page.locator("th[aria-sort]").first().getAttribute("aria-sort"),
              "ascending",
            );
            assert.equal(
              await page.locator("table.departments tbody tr td").first().textContent(),
              "=Formula Dept",
            );
            assert.deepEqual(await axeViolations(page), [], "the result page");
            await saveScreenshot(page, "web_result_page.png");

            // The upload page lists it among this browser's recent results, across reloads.
            await openPage(page, baseUrl);
            const recent = page.getByTestId("recent");
            await recent.waitFor();
            const entry = recent.locator("li").filter({ hasText: "north.csv and 2 more files" });
            assert.equal(await entry.count(), 1);
            assert.equal(await entry.getByRole("link").getAttribute("href"), path);
            assert.match(await entry.textContent() ?? "", /3 files, 30,004 rows, 1 bad row/);
            assert.deepEqual(await axeViolations(page), [], "the upload page with recent results");
            await saveScreenshot(page, "web_recent_results.png");
            await openPage(page, baseUrl);
            assert.equal(await entry.count(), 1);
            await entry.getByRole("button", { name: "Forget north.csv and 2 more files" }).click();
            assert.equal(await entry.count(), 0);
            await openPage(page, baseUrl);
            assert.equal(await entry.count(), 0);
            const kept = await page.evaluate(() =>
              localStorage.getItem("sales-aggregator.recent-results") ?? ""
            );
            assert.doesNotMatch(kept, new RegExp(resultId));
          },
        );

        await step("with signing on, the result's address is signed and expires", async () => {
          access.signPages = true;
          try {
            const csvPath = `${scratch}/signed.csv`;
            await Deno.writeTextFile(csvPath, salesCsv(500, 4, 13));
            await openPage(page, baseUrl);
            await chooseFile(page, csvPath);
            await page.getByRole("button", { name: "Upload" }).click();
            await page.waitForSelector("#results-heading");
            const address = new URL(page.url());
            const resultId = address.pathname.slice(3);
            assert.match(address.search, /^\?exp=\d+&sig=[\w-]{43}$/);
            const signed = await page.reload();
            assert.equal(signed?.status(), 200);
            assert.equal(await page.getByTestId("summary-rows").textContent(), "500");

            const past = new DownloadUrlSigner({
              publicResultsUrl: PUBLIC_RESULTS_URL,
              secret: URL_SECRET,
              ttlSec: 60,
              now: () => Date.now() - 3_600_000,
            });
            const expired = await page.goto(new URL(past.pagePathFor(resultId), baseUrl).href);
            assert.equal(expired?.status(), 410);
            assert.equal(await page.locator("h1").textContent(), "This link has expired");
            assert.equal(await page.getByTestId("summary-rows").count(), 0);
            assert.deepEqual(await axeViolations(page), [], "the expired page");
          } finally {
            access.signPages = false;
          }
        });

        await step("the page asks for the access token when the server requires one", async () => {
          access.requireToken = true;
          try {
            const csvPath = `${scratch}/token.csv`;
            await Deno.writeTextFile(csvPath, salesCsv(2_000, 5, 11));
            const expected = formatResultCsv((await aggregateInputFile(csvPath)).totals);
            // The field, by its label, as a screen reader user would find it.
            const tokenField = () =>
              page.getByRole("textbox", { name: "Access token", exact: true });
            const storedToken = () =>
              page.evaluate(() => sessionStorage.getItem("sales-aggregator.access-token"));
            await openPage(page, baseUrl);
            // Nothing on the page tells whether a token is needed before trying.
            assert.equal(await tokenField().count(), 0);
            await chooseFile(page, csvPath);
            await page.getByRole("button", { name: "Upload" }).click();

            // Refused: the prompt appears with its field focused; no upload was started.
            const field = tokenField();
            await field.waitFor();
            assert.equal(await page.evaluate(() => document.activeElement?.id), "access-token");
            assert.match(await page.getByRole("status").textContent() ?? "", /requires an access/);
            assert.equal(service.uploadsInProgress, 0);
            assert.equal(await page.getByRole("alert").count(), 0);
            await saveScreenshot(page, "web_token_prompt.png");

            // An empty field is explained without a request.
            await page.keyboard.press("Enter");
            assert.match(
              await page.getByTestId("token-error").textContent() ?? "",
              /Enter the access token/,
            );

            // A wrong token, typed and sent with Enter, is refused and not kept.
            await field.fill("not-the-token");
            await page.keyboard.press("Enter");
            await page.getByTestId("token-error").filter({ hasText: /did not accept/ }).waitFor();
            assert.equal(await field.getAttribute("aria-invalid"), "true");
            assert.equal(await page.evaluate(() => document.activeElement?.id), "access-token");
            assert.equal(await storedToken(), null);

            // The right token: the upload goes through and the token is kept for this tab only.
            await field.fill(ACCESS_TOKEN);
            await page.getByRole("button", { name: "Continue upload" }).click();
            await page.waitForSelector("#results-heading");
            assert.equal(await page.getByTestId("summary-rows").textContent(), formatCount(2_000));
            assert.equal(await downloadResult(page, "token.result.csv"), expected);
            assert.equal(await storedToken(), ACCESS_TOKEN);
            const resultPath = new URL(page.url()).pathname;
            // Never in localStorage (which holds only the compression setting).
            const kept = await page.evaluate(() => Object.values(localStorage));
            assert.ok(!kept.some((value) => value.includes(ACCESS_TOKEN)), `${kept}`);

            // After a reload the same tab sends it without asking again.
            await openPage(page, baseUrl);
            await chooseFile(page, csvPath);
            await page.getByRole("button", { name: "Upload" }).click();
            await page.waitForSelector("#results-heading");
            assert.equal(await tokenField().count(), 0);

            // The result's page in a new tab, which has no token yet: the server shows nothing of
            // the result, the island asks for the token, then shows the result.
            const tab = await page.context().newPage();
            try {
              await tab.goto(new URL(resultPath, baseUrl).href);
              await tab.waitForSelector('[data-island="ResultIsland"][data-hydrated="true"]');
              const tabField = tab.getByRole("textbox", { name: "Access token", exact: true });
              await tabField.waitFor();
              assert.equal(await tab.getByTestId("summary-rows").count(), 0);
              assert.deepEqual(await axeViolations(tab), [], "the token prompt on a result page");
              await tabField.fill(ACCESS_TOKEN);
              await tab.getByRole("button", { name: "Show result" }).click();
              await tab.getByTestId("summary-rows").waitFor();
              assert.equal(
                await tab.getByTestId("summary-rows").textContent(),
                formatCount(2_000),
              );
            } finally {
              await tab.close();
            }

            // And the person can drop it.
            await page.getByRole("button", { name: "Forget access token" }).click();
            assert.equal(await storedToken(), null);
            assert.equal(
              await page.getByRole("button", { name: "Forget access token" }).count(),
              0,
            );
          } finally {
            access.requireToken = false;
          }
        });
      }),
  });
}
