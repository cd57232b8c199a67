/**
 * The one error type the application throws, carrying a gRPC status code. Each transport maps it
 * once: grpc-js gets `{ code, details }`, HTTP gets {@linkcode httpStatusOf}.
 *
 * @module
 */

/** gRPC status codes (https://grpc.io/docs/guides/status-codes/). */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** A gRPC status code. */
export type Status = typeof Status[keyof typeof Status];

const STATUS_NAMES = new Map<number, string>(
  Object.entries(Status).map(([name, code]) => [code, name]),
);

/** The name of a gRPC status code (`UNAVAILABLE`), or undefined for a number that is not one. */
export function statusName(code: number): string | undefined {
  return STATUS_NAMES.get(code);
}

/** Options of {@linkcode AppError}. */
export interface AppErrorOptions extends ErrorOptions {
  /** For a temporary refusal: when the caller may try again, in milliseconds. */
  retryAfterMs?: number;
}

/** An expected failure with a status code and a message safe to show to the caller. */
export class AppError extends Error {
  override name = "AppError";
  /** When set, transports tell the client to retry after this many milliseconds. */
  readonly retryAfterMs: number | undefined;
  constructor(readonly code: Status, message: string, options?: AppErrorOptions) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** The gRPC trailer carrying a retry hint (gRPC's retry pushback). */
export const RETRY_PUSHBACK_HEADER = "grpc-retry-pushback-ms";

/**
 * The HTTP status for a gRPC status code, as the Connect protocol maps them (connect-es
 * `codeToHttpStatus`; `errors_test.ts` compares every code with it).
 */
export function httpStatusOf(code: Status): number {
  switch (code) {
    case Status.OK:
      return 200;
    case Status.INVALID_ARGUMENT:
    case Status.FAILED_PRECONDITION:
    case Status.OUT_OF_RANGE:
      return 400;
    case Status.UNAUTHENTICATED:
      return 401;
    case Status.PERMISSION_DENIED:
      return 403;
    case Status.NOT_FOUND:
      return 404;
    case Status.CANCELLED:
      return 499;
    case Status.ALREADY_EXISTS:
    case Status.ABORTED:
      return 409;
    case Status.RESOURCE_EXHAUSTED:
      return 429;
    case Status.UNIMPLEMENTED:
      return 501;
    case Status.UNAVAILABLE:
      return 503;
    case Status.DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

/** Turns anything thrown into an AppError; unexpected errors become INTERNAL with a generic message. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return new AppError(Status.INTERNAL, "Internal server error", { cause: error });
}
