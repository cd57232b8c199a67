import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import { isResultId, newResultId, parseResultId } from "./result_id.ts";

Deno.test("newResultId returns 32 lowercase hex characters, different each time", () => {
  const ids = new Set(Array.from({ length: 1000 }, newResultId));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
});

Deno.test("parseResultId rejects anything that is not 32 lowercase hex characters", async (t) => {
  const bad = [
    "",
    "0123456789abcdef0123456789abcde",
    "0123456789abcdef0123456789abcdef0",
    "0123456789ABCDEF0123456789ABCDEF",
    "../../../../etc/passwd",
    "0123456789abcdef0123456789abcde/",
    "0123456789abcdef0123456789abcdef.csv",
    "0123456789abcdef0123456789abcdef\n",
    "%2e%2e%2f",
  ];
  for (const value of bad) {
    await t.step(JSON.stringify(value), () => {
      assert.equal(isResultId(value), false);
      assert.throws(
        () => parseResultId(value),
        (error: unknown) => error instanceof AppError && error.code === Status.INVALID_ARGUMENT,
      );
    });
  }
  assert.equal(
    parseResultId("0123456789abcdef0123456789abcdef"),
    "0123456789abcdef0123456789abcdef",
  );
});
