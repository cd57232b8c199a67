/**
 * A sales service over a fresh result store whose download URLs are signed, as with
 * `SALES_URL_SECRET`, on a clock the test moves: what the GetResult tests of every transport start
 * from, to watch a link expire and be signed anew.
 *
 * @module
 */

import { DownloadUrlSigner, DownloadUrlVerifier } from "./service/download_url.ts";
import { createSalesService, type SalesServiceHandle } from "./service/sales_service.ts";
import { ResultStore } from "./storage/result_store.ts";

/** Seconds a signed URL stays valid. */
export const SIGNED_URL_TTL_SEC = 60;

/** The service and what a test reads or moves around it; disposing closes it and its storage. */
export interface SignedSalesService extends AsyncDisposable {
  readonly service: SalesServiceHandle;
  readonly store: ResultStore;
  /** Checks the URLs the service signs, on the same clock. */
  readonly downloadUrls: DownloadUrlVerifier;
  /** The signing clock in milliseconds since the epoch, from 2026-01-01T00:00:00Z; move it. */
  readonly clock: { now: number };
}

/** Starts the service on a temporary folder whose name begins with `prefix`. */
export async function startSignedSalesService(prefix: string): Promise<SignedSalesService> {
  const dir = await Deno.makeTempDir({ prefix });
  const clock = { now: Date.parse("2026-01-01T00:00:00Z") };
  const secret = "a long random secret";
  const now = () => clock.now;
  const store = await ResultStore.open(dir);
  const service = createSalesService({
    store,
    publicResultsUrl: "http://localhost:8080",
    downloadUrls: new DownloadUrlSigner({
      publicResultsUrl: "http://localhost:8080",
      secret,
      ttlSec: SIGNED_URL_TTL_SEC,
      now,
    }),
  });
  const downloadUrls = new DownloadUrlVerifier({ secret, now });
  return {
    service,
    store,
    downloadUrls,
    clock,
    async [Symbol.asyncDispose]() {
      service.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
