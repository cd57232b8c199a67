/**
 * The one place where errors become gRPC statuses for grpc-js. Expected failures are `AppError`s
 * and keep their code and message; anything else becomes `INTERNAL` with a generic message, and
 * its cause is logged, never sent. Handlers hand what they caught to grpc-js unchanged, wrapped in
 * a {@linkcode FailedCallTrailer}, and {@linkcode createErrorInterceptor} maps it as the status
 * leaves.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { AppError, RETRY_PUSHBACK_HEADER, Status, toAppError } from "../errors.ts";
import type { Logger } from "../logger.ts";

/**
 * The `{ code, details }` grpc-js sends for `error` (with a `grpc-retry-pushback-ms` trailer when
 * the error carries a retry hint); internal causes go to `logger`, with the method's path.
 */
export function toGrpcStatus(
  error: unknown,
  method: string,
  logger: Logger,
): Partial<grpc.StatusObject> {
  const appError = toAppError(error);
  if (appError.code === Status.INTERNAL || appError.code === Status.UNKNOWN) {
    logger.error(`${method} failed:`, appError.cause ?? error);
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

/**
 * The trailer a handler passes to its callback when its call failed: it carries what was thrown,
 * unchanged. grpc-js builds the status from the callback's error itself (`serverErrorToStatus`)
 * but keeps the trailer object, so {@linkcode createErrorInterceptor} finds the original error
 * there and maps it, in the one place this transport does.
 */
export class FailedCallTrailer extends grpc.Metadata {
  constructor(readonly error: unknown) {
    super();
  }
}

/** What a handler passes to its callback as the error, next to a {@linkcode FailedCallTrailer}. */
export const FAILED_CALL: Partial<grpc.StatusObject> = {
  code: Status.UNKNOWN,
  details: "The call failed",
};

/**
 * The server interceptor that turns a failed call's original error (see
 * {@linkcode FailedCallTrailer}) into its status through {@linkcode toGrpcStatus}, logging
 * unexpected errors with the method's path. Statuses without one (successes, refusals of the
 * call guard, answers given at shutdown) pass unchanged.
 */
export function createErrorInterceptor(logger: Logger): grpc.ServerInterceptor {
  return (method, call) => {
    const responder = new grpc.ResponderBuilder()
      .withSendStatus((status, next) => {
        if (!(status.metadata instanceof FailedCallTrailer)) return next(status);
        const mapped = toGrpcStatus(status.metadata.error, method.path, logger);
        next({
          code: mapped.code ?? Status.UNKNOWN,
          details: mapped.details ?? "",
          metadata: mapped.metadata ?? new grpc.Metadata(),
        });
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
