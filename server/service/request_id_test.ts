import assert from "node:assert/strict";
import { MAX_REQUEST_ID_LENGTH, requestIdOf, resolveRequestId } from "./request_id.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

Deno.test("resolveRequestId keeps a client's printable id up to the limit", () => {
  assert.equal(resolveRequestId("req-42"), "req-42");
  assert.equal(resolveRequestId("  spaced id  "), "spaced id");
  const longest = "a".repeat(MAX_REQUEST_ID_LENGTH);
  assert.equal(resolveRequestId(longest), longest);
  assert.equal(resolveRequestId(`{"x":"y"}`), `{"x":"y"}`);
});

Deno.test("resolveRequestId replaces a missing, overlong or unprintable id with a new one", async (t) => {
  const cases: [string, string | undefined][] = [
    ["missing", undefined],
    ["empty", ""],
    ["too long", "a".repeat(MAX_REQUEST_ID_LENGTH + 1)],
    ["newline", "a\nb"],
    ["carriage return", "a\r\nfake: line"],
    ["escape", "a\x1b[31mred"],
    ["non-ASCII", "café"],
    ["DEL", "a\x7f"],
  ];
  for (const [name, value] of cases) {
    await t.step(name, () => assert.match(resolveRequestId(value), UUID));
  }
  assert.notEqual(resolveRequestId(undefined), resolveRequestId(undefined));
});

Deno.test("requestIdOf prefers the id the transport resolved", () => {
  const header = (name: string) => (name === "x-request-id" ? "from-header" : undefined);
  const signal = new AbortController().signal;
  assert.equal(requestIdOf({ signal, header, requestId: "resolved" }), "resolved");
  assert.equal(requestIdOf({ signal, header }), "from-header");
});
