/**
 * Lowercase hex, the one way ids and digests are written: result and upload ids, chunk digests,
 * bundle and asset hashes.
 *
 * @example
 * ```ts
 * import { sha256Hex, toHex } from "./hex.ts";
 * if (toHex(new Uint8Array([0, 15, 255])) !== "000fff") throw new Error("hex");
 * const digest = await sha256Hex(new TextEncoder().encode("abc"));
 * if (!digest.startsWith("ba7816bf")) throw new Error(digest);
 * ```
 *
 * @module
 */

/** Two lowercase hex digits per byte, so the text sorts and compares as the bytes do. */
const BYTE_HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

/** `bytes` as lowercase hex, two characters per byte. */
export function toHex(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += BYTE_HEX[byte];
  return text;
}

/** SHA-256 of `bytes` as 64 lowercase hex characters; WebCrypto runs it off the JavaScript thread. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return toHex(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
  );
}
