/**
 * Access control for every SalesService RPC: {@linkcode withAuth} wraps the service so each call
 * must carry `authorization: Bearer <SALES_API_TOKEN>` metadata, or fails with `UNAUTHENTICATED`
 * before the service sees it (so a refused call never opens an upload). Both transports (grpc-js
 * and gRPC-Web) serve the wrapped object, so the check lives here, once. Health checks are a
 * separate gRPC service and stay open.
 *
 * @example
 * ```ts
 * import { AppError, Status } from "../errors.ts";
 * import { withAuth } from "./auth.ts";
 * import type { SalesService } from "./types.ts";
 *
 * const open = { downloadResult: () => Promise.resolve({ data: new Uint8Array() }) };
 * const service = withAuth(open as unknown as SalesService, "s3cret");
 * const ctx = (value?: string) => ({
 *   signal: new AbortController().signal,
 *   header: (name: string) => (name === "authorization" ? value : undefined),
 * });
 * await service.downloadResult({ resultId: "x" }, ctx("Bearer s3cret"));
 * const refused = await service.downloadResult({ resultId: "x" }, ctx()).catch((error) => error);
 * if (!(refused instanceof AppError && refused.code === Status.UNAUTHENTICATED)) throw refused;
 * ```
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { AppError, Status } from "../errors.ts";
import type { CallContext, SalesService } from "./types.ts";

/**
 * `service` behind a bearer token: each method first checks the call's `authorization` metadata.
 * Without a token (`undefined` or empty) the service is returned as it is: access control is off.
 */
export function withAuth(service: SalesService, token: string | undefined): SalesService {
  if (token === undefined || token === "") return service;
  const check = createTokenCheck(token);
  const guard = <In, Out>(
    method: (request: In, ctx: CallContext) => Promise<Out>,
  ) =>
  (request: In, ctx: CallContext): Promise<Out> =>
    Promise.try(() => {
      check(ctx);
      return method.call(service, request, ctx);
    });
  return {
    uploadCsv: guard(service.uploadCsv),
    // Checked before the first chunk is read: a refused stream is never consumed.
    uploadCsvStream: guard(service.uploadCsvStream),
    downloadResult: guard(service.downloadResult),
    startUpload: guard(service.startUpload),
    appendUpload: guard(service.appendUpload),
    finishUpload: guard(service.finishUpload),
    cancelUpload: guard(service.cancelUpload),
    getResult: guard(service.getResult),
  };
}

/** The header both transports carry the token in (gRPC metadata keys are lower case). */
export const AUTHORIZATION_HEADER = "authorization";

/**
 * A function that throws `UNAUTHENTICATED` unless `ctx` carries `authorization: Bearer <token>`.
 * The messages tell a missing token from a wrong one; neither reveals anything about the token.
 */
export function createTokenCheck(token: string): (ctx: CallContext) => void {
  const matches = createSecretMatcher(token);
  return (ctx) => {
    const value = ctx.header(AUTHORIZATION_HEADER)?.trim();
    if (value === undefined || value === "") {
      throw new AppError(
        Status.UNAUTHENTICATED,
        "This server requires an access token: send the metadata authorization: Bearer <token>",
      );
    }
    const match = /^Bearer +(\S+)$/i.exec(value);
    if (match === null) {
      throw new AppError(
        Status.UNAUTHENTICATED,
        "Malformed authorization metadata: expected Bearer <token>",
      );
    }
    if (!matches(match[1])) {
      throw new AppError(Status.UNAUTHENTICATED, "The access token is not valid");
    }
  };
}

/** A constant-time test of whether a candidate equals `secret`, whatever their lengths. */
export function createSecretMatcher(secret: string): (candidate: string) => boolean {
  // Comparing HMACs under a random per-process key takes the same time whatever the inputs, and
  // the digests always have equal length, which timingSafeEqual requires.
  const key = crypto.getRandomValues(new Uint8Array(32));
  const digestOf = (value: string) => createHmac("sha256", key).update(value).digest();
  const expected = digestOf(secret);
  return (candidate) => timingSafeEqual(digestOf(candidate), expected);
}
