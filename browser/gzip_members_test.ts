import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import {
  crc32,
  deflatedGzipMember,
  inlineCompressor,
  isGzip,
  pieceBytesFor,
  storedGzipMember,
  storedOverhead,
} from "./gzip_members.ts";

/** The textbook bit-at-a-time CRC-32, to check the table-driven one against. */
function referenceCrc32(bytes: Uint8Array): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return ~crc >>> 0;
}

function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65_536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65_536));
  }
  return bytes;
}

async function bytesOf(blob: Blob): Promise<Uint8Array> {
  return new Uint8Array(await blob.arrayBuffer());
}

Deno.test("crc32 matches the bit-at-a-time CRC-32 at every length and when continued", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  const bytes = randomBytes(1_000);
  for (const length of [0, 1, 7, 8, 9, 15, 16, 17, 999, 1_000]) {
    assert.equal(crc32(bytes.subarray(0, length)), referenceCrc32(bytes.subarray(0, length)));
  }
  assert.equal(crc32(bytes.subarray(333), crc32(bytes.subarray(0, 333))), referenceCrc32(bytes));
});

Deno.test("storedGzipMember inflates to the slice with zlib and DecompressionStream", async (t) => {
  for (const length of [0, 1, 65_534, 65_535, 65_536, 200_000]) {
    await t.step(`${length} bytes`, async () => {
      const piece = randomBytes(length);
      const member = await storedGzipMember(new Blob([piece]));
      assert.equal(member.size, length + storedOverhead(length));
      assert.deepEqual(new Uint8Array(gunzipSync(await bytesOf(member))), piece);
      const inflated = member.stream().pipeThrough(new DecompressionStream("gzip"));
      assert.deepEqual(await bytesOf(await new Response(inflated).blob()), piece);
    });
  }
});

Deno.test("gzip members of both kinds concatenate into one stream of the whole file", async () => {
  const text = "Department Name,Date,Number of Sales\n" +
    Array.from({ length: 5_000 }, (_, i) => `Dept ${i % 13},2024-02-${(i % 28) + 1},${i}\n`)
      .join("");
  const file = new Blob([text]);
  const pieceBytes = 10_000;
  const members: Blob[] = [];
  for (let start = 0, i = 0; start < file.size; start += pieceBytes, i++) {
    const piece = file.slice(start, start + pieceBytes);
    members.push(i % 2 === 0 ? await storedGzipMember(piece) : await deflatedGzipMember(piece));
  }
  const stream = await bytesOf(new Blob(members));
  assert.ok(await isGzip(new Blob(members)));
  assert.equal(new TextDecoder().decode(gunzipSync(stream)), text);
});

Deno.test("deflatedGzipMember is the same bytes every time, as a retried chunk must be", async () => {
  const piece = new Blob(["Toys,2024-01-02,3\n".repeat(10_000)]);
  const compressor = inlineCompressor();
  const first = await bytesOf(await compressor.compress(piece));
  const second = await bytesOf(await compressor.compress(piece));
  assert.deepEqual(first, second);
  assert.ok(first.length < piece.size / 10);
});

Deno.test("isGzip reads the magic bytes only", async () => {
  assert.equal(await isGzip(new Blob([new Uint8Array([0x1f, 0x8b, 8])])), true);
  assert.equal(await isGzip(new Blob([new Uint8Array([0x1f])])), false);
  assert.equal(await isGzip(new Blob(["Department Name"])), false);
  assert.equal(await isGzip(new Blob([])), false);
});

Deno.test("pieceBytesFor leaves room for the stored member's framing", () => {
  for (const chunkBytes of [40, 100, 65_535, 65_600, 4 * 1024 * 1024, 8 * 1024 * 1024 - 1]) {
    const piece = pieceBytesFor(chunkBytes);
    assert.ok(piece + storedOverhead(piece) <= chunkBytes, `${chunkBytes}`);
    assert.ok(piece + 1 + storedOverhead(piece + 1) > chunkBytes, `${chunkBytes} is tight`);
  }
  assert.throws(() => pieceBytesFor(20), /cannot hold a gzip member/);
});
