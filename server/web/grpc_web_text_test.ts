import assert from "node:assert/strict";
import { concatBytes, randomPieces } from "../_test_bytes.ts";
import { Base64Decoder, Base64Encoder } from "./grpc_web_text.ts";

/** The slow, obviously correct reference: the platform's btoa over the whole input. */
function referenceBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

const ascii = (text: string) => new TextEncoder().encode(text);

Deno.test("Base64Encoder matches btoa for any chunking", () => {
  for (let trial = 0; trial < 300; trial++) {
    const bytes = randomBytes(Math.floor(Math.random() * 40));
    const encoder = new Base64Encoder();
    const text = concatBytes([
      ...randomPieces(bytes, 8).map((piece) => encoder.push(piece)),
      encoder.finish(),
    ]);
    assert.equal(new TextDecoder().decode(text), referenceBase64(bytes), `input ${bytes}`);
  }
});

Deno.test("Base64Decoder inverts btoa for any chunking", () => {
  for (let trial = 0; trial < 300; trial++) {
    const bytes = randomBytes(Math.floor(Math.random() * 40));
    const decoder = new Base64Decoder();
    const pieces = randomPieces(ascii(referenceBase64(bytes)), 8);
    const decoded = concatBytes([...pieces.map((piece) => decoder.push(piece)), decoder.finish()]);
    assert.deepEqual(decoded, bytes);
  }
});

Deno.test("Base64Decoder accepts padded segments concatenated mid-stream, as grpc-web clients send", () => {
  const messages = [randomBytes(1), randomBytes(5), randomBytes(3), randomBytes(2)];
  const text = messages.map(referenceBase64).join("\r\n");
  const decoder = new Base64Decoder();
  const decoded = concatBytes([
    ...randomPieces(ascii(text), 8).map((p) => decoder.push(p)),
    decoder.finish(),
  ]);
  assert.deepEqual(decoded, concatBytes(messages));
});

Deno.test("Base64Decoder accepts an unpadded tail and url-safe letters", () => {
  const decoder = new Base64Decoder();
  const decoded = concatBytes([decoder.push(ascii("-_8")), decoder.finish()]);
  assert.deepEqual(decoded, new Uint8Array([0xfb, 0xff]));
});

Deno.test("Base64Decoder rejects bad input with INVALID_ARGUMENT", async (t) => {
  const cases = [
    { name: "a byte outside the alphabet", text: "AB*D" },
    { name: "padding in the first two places", text: "A===" },
    { name: "data after padding in a group", text: "AB=C" },
    { name: "a lone final character", text: "ABCDE" },
  ];
  for (const { name, text } of cases) {
    await t.step(name, () => {
      const decoder = new Base64Decoder();
      assert.throws(
        () => {
          decoder.push(ascii(text));
          decoder.finish();
        },
        (error: Error & { code?: number }) =>
          error.code === 3 && /grpc-web-text/.test(error.message),
      );
    });
  }
});
