import assert from "node:assert/strict";
import { withAuth } from "../../server/service/auth.ts";
import { DownloadUrlSigner } from "../../server/service/download_url.ts";
import { createSalesService } from "../../server/service/sales_service.ts";
import type { SalesService, UploadChunk } from "../../server/service/types.ts";
import { ResultStore } from "../../server/storage/result_store.ts";
import { createWebHandler } from "../../server/web/web_app.ts";
import { RecordingLogger } from "../../server/_test_recording_logger.ts";

const BASE = "http://localhost:3000";
const SECRET = "a page-signing secret for tests";
const TOKEN = "page-t0ken";
const encoder = new TextEncoder();
const HEADER = "Department Name,Date,Number of Sales\n";

/** A service over a scratch store, a web handler over it, and one two-file result stored. */
async function setup(options: { secret?: string; token?: string; departments?: number } = {}) {
  const dir = await Deno.makeTempDir({ prefix: "result_page_test_" });
  const publicResultsUrl = "http://localhost:8080";
  const signer = new DownloadUrlSigner({ publicResultsUrl, secret: options.secret });
  const store = await ResultStore.open(`${dir}/storage`);
  const service = createSalesService({ store, publicResultsUrl, downloadUrls: signer });
  // Each page view's reads of a whole result CSV: none while the metadata keeps what it shows.
  const csvReads: string[] = [];
  const counted: SalesService = {
    ...service,
    downloadResult(request, ctx) {
      csvReads.push(request.resultId);
      return service.downloadResult(request, ctx);
    },
  };
  // Errors would be logged here; the bundle's absence (no build in these tests) is a warning.
  const logger = new RecordingLogger();
  const web = (guarded: SalesService) =>
    createWebHandler({
      logger,
      service: guarded,
      config: {
        grpcWebUrl: "",
        corsOrigins: [],
        maxMessageBytes: 64 << 20,
        maxUploadBytes: undefined,
        salesApiToken: options.token,
        salesUrlSecret: options.secret,
      },
      buildDir: new URL(`file://${dir}/build/`),
    });
  const handler = web(withAuth(counted, options.token));
  const ctx = {
    signal: new AbortController().signal,
    header: (name: string) => name === "authorization" ? `Bearer ${options.token}` : undefined,
  };
  const many = Array.from(
    { length: options.departments ?? 0 },
    (_, i) => `Extra ${i},2024-01-01,${i + 1}\n`,
  ).join("");
  async function* chunks(): AsyncGenerator<UploadChunk> {
    yield {
      filename: "north.csv",
      data: encoder.encode(`${HEADER}Garden,2024-01-02,10\nToys,2024-01-03,4\n${many}`),
    };
    // A later chunk with a name starts the next file.
    yield {
      filename: "south.csv",
      data: encoder.encode(`${HEADER}Garden,2024-01-02,5\nToys,2023-02-29,1\n`),
    };
  }
  const uploaded = await service.uploadCsvStream(chunks(), ctx);
  return {
    uploaded,
    signer,
    logger,
    csvReads,
    metaPath: `${store.dir}/${uploaded.resultId}.json`,
    get: (path: string) => handler(new Request(BASE + path)),
    async [Symbol.asyncDispose]() {
      assert.deepEqual(logger.entries.filter((entry) => entry.level === "error"), []);
      service.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** The text a reader sees: tags dropped, entities and spaces as rendered. */
function textOf(html: string): string {
  return html.replace(/<[^>]+>/g, " ").replace(/&amp;/g, "&").replace(/&#39;|&#x27;/g, "'")
    .replace(/\s+/g, " ");
}

Deno.test("/r/<id> renders the stored result on the server: files, counts, bad rows, totals", async () => {
  await using web = await setup();
  assert.equal(web.uploaded.pagePath, `/r/${web.uploaded.resultId}`);
  const response = await web.get(web.uploaded.pagePath);
  assert.equal(response.status, 200);
  const html = await response.text();
  const text = textOf(html);
  assert.match(html, /<title>Results for north\.csv and 1 more file: Sales Aggregator<\/title>/);
  assert.match(text, /Results for 2 files/);
  // Each file with its own counts, and the whole.
  assert.match(text, /north\.csv 2 0 2/);
  assert.match(text, /south\.csv 2 1 1/);
  assert.match(html, /data-testid="summary-rows">4</);
  assert.match(html, /data-testid="summary-bad-rows">1</);
  assert.match(html, /data-testid="summary-departments">2</);
  // The bad row names its file and its line there.
  assert.match(text, /3 [a-z ]+ Toys,2023-02-29,1 south\.csv/);
  // The totals, the chart, and the download link on the result server.
  assert.match(text, /Garden 15/);
  assert.match(html, /class="chart-bar"/);
  assert.match(
    html,
    new RegExp(`href="http://localhost:8080/results/${web.uploaded.resultId}\\.csv"`),
  );
  // The island gets the same data, to make the table sortable.
  assert.match(html, /data-island="ResultIsland"/);
  // All of it from the metadata: the CSV was never read.
  assert.deepEqual(web.csvReads, []);
});

Deno.test("/r/<id> of a result stored before its largest departments were kept reads its CSV", async () => {
  await using web = await setup({ departments: 1_500 });
  const fromMeta = await (await web.get(web.uploaded.pagePath)).text();
  assert.deepEqual(web.csvReads, []);
  const meta = JSON.parse(await Deno.readTextFile(web.metaPath));
  delete meta.largest;
  await Deno.writeTextFile(web.metaPath, JSON.stringify(meta));
  const fromCsv = await (await web.get(web.uploaded.pagePath)).text();
  assert.deepEqual(web.csvReads, [web.uploaded.resultId]);
  // The same page either way: the same departments, totals and grand total.
  assert.equal(fromCsv, fromMeta);
  assert.match(textOf(fromCsv), /Extra 1499 1,500 0\.13%/);
});

Deno.test("/r/<id> embeds only the largest departments of a large result, and says so", async () => {
  await using web = await setup({ departments: 1_500 });
  const html = await (await web.get(web.uploaded.pagePath)).text();
  const props = JSON.parse(
    html.match(/data-island="ResultIsland" data-island-props="([^"]*)"/)![1]
      .replaceAll("&quot;", '"').replaceAll("&amp;", "&"),
  );
  assert.equal(props.result.largest.length, 1_000);
  assert.equal(props.result.departments, 1_502);
  assert.match(textOf(html), /This page shows the 1,000 largest of 1,502 departments/);
});

Deno.test("/r/<id> is a readable 404 for a deleted, unknown or malformed result", async (t) => {
  await using web = await setup();
  for (const id of ["0123456789abcdef0123456789abcdef", "not-an-id", "../../etc/passwd"]) {
    await t.step(id, async () => {
      const response = await web.get(`/r/${encodeURIComponent(id)}`);
      assert.equal(response.status, 404);
      const html = await response.text();
      assert.match(html, /<title>Result not found<\/title>/);
      assert.match(textOf(html), /Results are deleted after some time/);
    });
  }
});

Deno.test("/r/<id> with signing on: the signed address works, an expired or altered one is refused", async () => {
  await using web = await setup({ secret: SECRET });
  const { resultId, pagePath } = web.uploaded;
  assert.match(pagePath, new RegExp(`^/r/${resultId}\\?exp=\\d+&sig=[\\w-]{43}$`));
  assert.equal((await web.get(pagePath)).status, 200);

  const unsigned = await web.get(`/r/${resultId}`);
  assert.equal(unsigned.status, 403);
  const unsignedText = textOf(await unsigned.text());
  assert.match(unsignedText, /This link is not valid/);
  assert.doesNotMatch(unsignedText, /Garden|north\.csv/);

  const altered = await web.get(
    pagePath.replace(/sig=./, (match) => match.endsWith("A") ? "sig=B" : "sig=A"),
  );
  assert.equal(altered.status, 403);

  const past = new DownloadUrlSigner({
    publicResultsUrl: "http://localhost:8080",
    secret: SECRET,
    ttlSec: 60,
    now: () => Date.now() - 3_600_000,
  });
  const expired = await web.get(past.pagePathFor(resultId));
  assert.equal(expired.status, 410);
  const html = await expired.text();
  assert.match(html, /<title>This link has expired<\/title>/);
  const text = textOf(html);
  assert.match(text, /this one's time is over/);
  // Nothing of the result, and no island to fetch it.
  assert.doesNotMatch(text, /Garden|north\.csv|Download/);
  assert.doesNotMatch(html, /data-island=/);

  // A download URL's signature does not open the page.
  const download = new URL(web.uploaded.downloadUrl);
  assert.equal((await web.get(`/r/${resultId}${download.search}`)).status, 403);
});

Deno.test("/r/<id> with a token required renders no result, only the island that asks for it", async () => {
  await using web = await setup({ token: TOKEN });
  const response = await web.get(web.uploaded.pagePath);
  assert.equal(response.status, 200);
  const html = await response.text();
  assert.match(html, /data-island="ResultIsland"/);
  const props = html.match(/data-island-props="([^"]*)"/)![1].replaceAll("&quot;", '"');
  assert.deepEqual(JSON.parse(props), { resultId: web.uploaded.resultId, grpcWebUrl: "" });
  assert.doesNotMatch(textOf(html), /Garden|Toys|north\.csv|south\.csv/);
});
