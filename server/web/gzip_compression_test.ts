import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { ConnectError } from "@connectrpc/connect";
import { gzipCompression, gzipDeclaredSize } from "./gzip_compression.ts";

Deno.test("gzipCompression round-trips messages and stops inflating at the limit", async () => {
  const message = new TextEncoder().encode("Garden,2024-01-03,4\n".repeat(1000));
  const packed = await gzipCompression.compress(message);
  assert.ok(packed.length < message.length / 10);
  assert.deepEqual(await gzipCompression.decompress(packed, message.length), message);
  assert.deepEqual(await gzipCompression.decompress(new Uint8Array(0), 0), new Uint8Array(0));
  const bomb = new Uint8Array(gzipSync(new Uint8Array(64 << 20)));
  await assert.rejects(
    () => gzipCompression.decompress(bomb, 1 << 20),
    (error: unknown) =>
      error instanceof ConnectError && error.code === 8 && /1048576 bytes/.test(error.rawMessage),
  );
  await assert.rejects(
    () => gzipCompression.decompress(new Uint8Array(30).fill(1), 1 << 20),
    (error: unknown) => error instanceof ConnectError && error.code === 3,
  );
});

Deno.test("gzipDeclaredSize reads the ISIZE trailer of gzip and nothing else", () => {
  assert.equal(gzipDeclaredSize(new Uint8Array(gzipSync(new Uint8Array(12345)))), 12345);
  assert.equal(gzipDeclaredSize(new Uint8Array(gzipSync(new Uint8Array(0)))), 0);
  assert.equal(gzipDeclaredSize(new Uint8Array(19)), undefined);
  assert.equal(gzipDeclaredSize(new Uint8Array(40).fill(7)), undefined);
});
