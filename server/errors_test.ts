import assert from "node:assert/strict";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { AppError, httpStatusOf, Status, toAppError } from "./errors.ts";

Deno.test("httpStatusOf maps every gRPC code as connect-es codeToHttpStatus does", async (t) => {
  for (const [name, code] of Object.entries(Status)) {
    if (code === Status.OK) continue;
    await t.step(name, () => assert.equal(httpStatusOf(code), codeToHttpStatus(code as number)));
  }
  assert.equal(httpStatusOf(Status.OK), 200);
});

Deno.test("toAppError keeps AppErrors and hides anything else behind INTERNAL", () => {
  const known = new AppError(Status.NOT_FOUND, "Result 1 not found");
  assert.equal(toAppError(known), known);
  const cause = new Error("ENOENT /secret/path");
  const hidden = toAppError(cause);
  assert.equal(hidden.code, Status.INTERNAL);
  assert.equal(hidden.message, "Internal server error");
  assert.equal(hidden.cause, cause);
});
