import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { withAuth } from "../server/service/auth.ts";
import { createGrpcWebHandler } from "../server/web/grpc_web.ts";
import { createFakeSalesService } from "../server/web/_test_fake_sales_service.ts";
import {
  authorizationHeaders,
  memoryTokenStore,
  normalizeToken,
  sessionTokenStore,
  TOKEN_STORAGE_KEY,
} from "./access_token.ts";
import { createGrpcWebSalesClient, UploadError, uploadFile } from "./upload_client.ts";

const TOKEN = "page-t0ken";

/** A Storage like the browser's, optionally refusing every call as private modes may. */
function fakeStorage(refuse = false): Storage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  const guard = () => {
    if (refuse) throw new DOMException("The quota has been exceeded", "QuotaExceededError");
  };
  return {
    items,
    get length() {
      return items.size;
    },
    key: (index) => [...items.keys()][index] ?? null,
    getItem: (key) => (guard(), items.get(key) ?? null),
    setItem: (key, value) => (guard(), void items.set(key, value)),
    removeItem: (key) => (guard(), void items.delete(key)),
    clear: () => (guard(), items.clear()),
  };
}

Deno.test("sessionTokenStore keeps the token in session storage under one key", () => {
  const storage = fakeStorage();
  const tokens = sessionTokenStore(storage);
  assert.equal(tokens.get(), undefined);
  tokens.set(TOKEN);
  assert.deepEqual([...storage.items], [[TOKEN_STORAGE_KEY, TOKEN]]);
  // Another store over the same storage (a reload of the tab) finds it.
  assert.equal(sessionTokenStore(storage).get(), TOKEN);
  tokens.clear();
  assert.equal(storage.items.size, 0);
  assert.equal(sessionTokenStore(storage).get(), undefined);
});

Deno.test("sessionTokenStore falls back to memory when storage refuses", () => {
  const tokens = sessionTokenStore(fakeStorage(true));
  tokens.set(TOKEN);
  assert.equal(tokens.get(), TOKEN);
  tokens.clear();
  assert.equal(tokens.get(), undefined);
});

Deno.test("normalizeToken accepts a token with or without Bearer and explains bad input", () => {
  assert.deepEqual(normalizeToken(` ${TOKEN}\n`), { token: TOKEN });
  assert.deepEqual(normalizeToken(`bearer ${TOKEN}`), { token: TOKEN });
  assert.match((normalizeToken("   ") as { problem: string }).problem, /Enter the access token/);
  assert.match((normalizeToken("two words") as { problem: string }).problem, /without spaces/);
  assert.match((normalizeToken("tökén") as { problem: string }).problem, /letters, digits/);
});

Deno.test("authorizationHeaders sends a bearer token only when there is one", () => {
  assert.deepEqual(authorizationHeaders(undefined), {});
  assert.deepEqual(authorizationHeaders(""), {});
  assert.deepEqual(authorizationHeaders(TOKEN), { authorization: `Bearer ${TOKEN}` });
});

Deno.test("uploadFile is refused with Unauthenticated until the page's token store holds the token", async () => {
  const { service, log } = createFakeSalesService({ chunkSize: 1024 });
  const handler = createGrpcWebHandler({ service: withAuth(service, TOKEN) });
  const tokens = memoryTokenStore();
  // As the island builds it: headers read from the store on every call.
  const client = createGrpcWebSalesClient("http://localhost:3000", {
    fetch: (input, init) => handler(new Request(input, init)),
    headers: () => authorizationHeaders(tokens.get()),
  });
  const file = new Blob(["Department Name,Date,Number of Sales\nToys,2024-01-02,3\n"]);

  const missing = await uploadFile(client, file, { retryDelayMs: 1 }).catch((error) => error);
  assert.ok(missing instanceof UploadError);
  assert.equal(missing.code, Code.Unauthenticated);
  assert.match(missing.message, /requires an access token/);
  tokens.set("wrong");
  const wrong = await uploadFile(client, file, { retryDelayMs: 1 }).catch((error) => error);
  assert.equal(wrong.code, Code.Unauthenticated);
  assert.match(wrong.message, /not valid/);
  // Refused calls never reached the service: no upload was started.
  assert.deepEqual(log.calls, []);

  tokens.set(TOKEN);
  const summary = await uploadFile(client, file, { retryDelayMs: 1 });
  assert.equal(summary.rows, 2);
  assert.deepEqual(log.calls, ["startUpload", "appendUpload", "finishUpload", "downloadResult"]);
  assert.ok(log.headers.every((headers) => headers.authorization === `Bearer ${TOKEN}`));
});
