/**
 * The one place where errors become gRPC statuses for grpc-js. Expected failures are `AppError`s
 * and keep their code and message; anything else becomes `INTERNAL` with a generic message, and
 * its cause is logged, never sent.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { AppError, RETRY_PUSHBACK_HEADER, Status, toAppError } from "../errors.ts";

/** Where the causes of internal errors go. */
export type ErrorLogger = (message: string, error: unknown) => void;

/**
 * The `{ code, details }` grpc-js sends for `error` (with a `grpc-retry-pushback-ms` trailer when
 * the error carries a retry hint); internal causes go to `log`.
 */
export function toGrpcStatus(
  error: unknown,
  method: string,
  log: ErrorLogger,
): Partial<grpc.StatusObject> {
  const appError = toAppError(error);
  if (appError.code === Status.INTERNAL || appError.code === Status.UNKNOWN) {
    log(`${method} failed:`, appError.cause ?? error);
  }
  if (appError.retryAfterMs === undefined) {
    return { code: appError.code, details: appError.message };
  }
  const metadata = new grpc.Metadata();
  metadata.set(RETRY_PUSHBACK_HEADER, String(Math.ceil(appError.retryAfterMs)));
  return { code: appError.code, details: appError.message, metadata };
}

/** The `AppError` for a status a grpc-js client received, so clients share the server's error type. */
export function fromGrpcError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const status = error as Partial<grpc.ServiceError>;
  if (typeof status?.code === "number" && status.code >= 1 && status.code <= 16) {
    return new AppError(status.code as Status, status.details || String(status.message), {
      cause: error,
    });
  }
  return new AppError(Status.UNKNOWN, String((error as Error)?.message ?? error), { cause: error });
}
