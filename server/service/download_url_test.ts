import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  DownloadUrlSigner,
  type DownloadUrlSignerOptions,
  DownloadUrlVerifier,
} from "./download_url.ts";

const RESULT_ID = "0123456789abcdef0123456789abcdef";
const OTHER_ID = "fedcba9876543210fedcba9876543210";
const BASE = "https://sales.example/files";
const SECRET = "correct horse battery staple";
const NOW = Date.parse("2025-06-01T12:00:00Z");

/** A signer and a verifier with the same secret and clock, as the service and result server. */
function downloadUrls(options: DownloadUrlSignerOptions) {
  const signer = new DownloadUrlSigner(options);
  const verifier = new DownloadUrlVerifier({ secret: options.secret, now: options.now });
  assert.equal(verifier.signed, signer.signed);
  return {
    signed: signer.signed,
    urlFor: (resultId: string) => signer.urlFor(resultId),
    verify: (resultId: string, params: URLSearchParams) => verifier.verify(resultId, params),
  };
}

function signedUrls(now = () => NOW, ttlSec = 600) {
  return downloadUrls({ publicResultsUrl: BASE, secret: SECRET, ttlSec, now });
}

/** The URL split into what the result server sees: the id in the path and the query. */
function parts(url: string): { resultId: string; params: URLSearchParams } {
  const parsed = new URL(url);
  return {
    resultId: parsed.pathname.match(/\/results\/([0-9a-f]{32})\.csv$/)![1],
    params: parsed.searchParams,
  };
}

Deno.test("DownloadUrlSigner.urlFor builds plain URLs without a secret, and DownloadUrlVerifier.verify accepts anything", () => {
  for (const secret of [undefined, ""]) {
    const urls = downloadUrls({ publicResultsUrl: BASE, secret });
    assert.equal(urls.signed, false);
    assert.equal(urls.urlFor(RESULT_ID), `${BASE}/results/${RESULT_ID}.csv`);
    assert.equal(urls.verify(RESULT_ID, new URLSearchParams()), undefined);
    assert.equal(urls.verify(RESULT_ID, new URLSearchParams("exp=1&sig=x")), undefined);
  }
});

Deno.test("DownloadUrlSigner.urlFor signs the id and expiry with HMAC-SHA256 as documented", () => {
  const urls = signedUrls();
  assert.equal(urls.signed, true);
  const url = urls.urlFor(RESULT_ID);
  const expiry = NOW / 1000 + 600;
  // An independent computation of the documented format.
  const signature = createHmac("sha256", SECRET)
    .update(`sales-result-v1\n${RESULT_ID}\n${expiry}`)
    .digest("base64url");
  assert.equal(url, `${BASE}/results/${RESULT_ID}.csv?exp=${expiry}&sig=${signature}`);
  const { resultId, params } = parts(url);
  assert.equal(urls.verify(resultId, params), undefined);
});

Deno.test("DownloadUrlVerifier.verify refuses missing, tampered and expired signatures with a reason", async (t) => {
  let now = NOW;
  const urls = signedUrls(() => now);
  const { params } = parts(urls.urlFor(RESULT_ID));
  const expiry = params.get("exp")!;
  const signature = params.get("sig")!;
  const flip = (text: string, at: number) =>
    text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1);
  const cases: { name: string; resultId?: string; query: string; reason: RegExp }[] = [
    { name: "no query", query: "", reason: /not signed/ },
    { name: "no sig", query: `exp=${expiry}`, reason: /not signed/ },
    { name: "no exp", query: `sig=${signature}`, reason: /not signed/ },
    { name: "other id", resultId: OTHER_ID, query: params.toString(), reason: /not valid/ },
    {
      name: "later exp",
      query: `exp=${Number(expiry) + 3600}&sig=${signature}`,
      reason: /not valid/,
    },
    {
      name: "exp with a leading zero",
      query: `exp=0${expiry}&sig=${signature}`,
      reason: /not valid/,
    },
    { name: "exp not a number", query: `exp=soon&sig=${signature}`, reason: /not valid/ },
    { name: "sig changed", query: `exp=${expiry}&sig=${flip(signature, 10)}`, reason: /not valid/ },
    // Base64url's last character has spare bits: another spelling of the same bytes is refused too.
    {
      name: "sig last character changed",
      query: `exp=${expiry}&sig=${flip(signature, 42)}`,
      reason: /not valid/,
    },
    {
      name: "sig truncated",
      query: `exp=${expiry}&sig=${signature.slice(1)}`,
      reason: /not valid/,
    },
    { name: "sig as hex", query: `exp=${expiry}&sig=${"ab".repeat(32)}`, reason: /not valid/ },
    {
      name: "signed with another secret",
      query: parts(
        new DownloadUrlSigner({
          publicResultsUrl: BASE,
          secret: "other",
          ttlSec: 600,
          now: () => NOW,
        })
          .urlFor(RESULT_ID),
      ).params.toString(),
      reason: /not valid/,
    },
  ];
  for (const { name, resultId, query, reason } of cases) {
    await t.step(name, () => {
      const refusal = urls.verify(resultId ?? RESULT_ID, new URLSearchParams(query));
      assert.match(refusal?.message ?? "", reason);
      // Only a link this server signed, unaltered, is ever said to have expired.
      assert.equal(refusal?.kind, "invalid");
    });
  }
  await t.step("valid until its expiry second, expired after", () => {
    now = Number(expiry) * 1000 + 999;
    assert.equal(urls.verify(RESULT_ID, params), undefined);
    now = Number(expiry) * 1000 + 1000;
    assert.deepEqual(urls.verify(RESULT_ID, params), {
      kind: "expired",
      message:
        "This download URL expired at 2025-06-01T12:10:00.000Z: ask the service for a new one",
    });
    // An expired link altered is invalid, not expired: the signature is checked first.
    const altered = new URLSearchParams(params);
    altered.set(
      "sig",
      signature.slice(0, 10) + (signature[10] === "A" ? "B" : "A") +
        signature.slice(11),
    );
    assert.equal(urls.verify(RESULT_ID, altered)?.kind, "invalid");
  });
});

Deno.test("DownloadUrlVerifier.verifyPage tells an expired page link from an invalid one", () => {
  let now = NOW;
  const options = { publicResultsUrl: BASE, secret: SECRET, ttlSec: 600, now: () => now };
  const signer = new DownloadUrlSigner(options);
  const verifier = new DownloadUrlVerifier(options);
  const page = new URL(signer.pagePathFor(RESULT_ID), BASE);
  assert.equal(page.pathname, `/r/${RESULT_ID}`);
  assert.equal(verifier.verifyPage(RESULT_ID, page.searchParams), undefined);
  // A download URL's signature does not open the page, nor the page's a download.
  const download = new URL(signer.urlFor(RESULT_ID));
  assert.deepEqual(verifier.verifyPage(RESULT_ID, download.searchParams), {
    kind: "invalid",
    message: "The signature of this page link is not valid",
  });
  assert.equal(verifier.verify(RESULT_ID, page.searchParams)?.kind, "invalid");
  assert.deepEqual(verifier.verifyPage(RESULT_ID, new URLSearchParams()), {
    kind: "invalid",
    message: "This page link is not signed: ask the service for a new one",
  });
  now += 601_000;
  assert.deepEqual(verifier.verifyPage(RESULT_ID, page.searchParams), {
    kind: "expired",
    message: "This page link expired at 2025-06-01T12:10:00.000Z: ask the service for a new one",
  });
  assert.equal(verifier.verifyPage(OTHER_ID, page.searchParams)?.kind, "invalid");
});
