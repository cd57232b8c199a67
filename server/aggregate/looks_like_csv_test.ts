import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { csvRefusal, SNIFF_BYTES } from "./looks_like_csv.ts";

const encode = (text: string) => new TextEncoder().encode(text);

Deno.test("csvRefusal refuses empty and binary files and accepts text and gzip", async (t) => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  const lateNul = new Uint8Array(SNIFF_BYTES + 10).fill(0x41);
  lateNul[SNIFF_BYTES + 5] = 0;
  const cases = [
    {
      name: "0-byte file",
      size: 0,
      head: new Uint8Array(),
      want: "“x.csv” is empty. Choose a file with a header and rows.",
    },
    {
      name: "PNG",
      size: 5000,
      head: png,
      want: "“x.csv” does not look like a CSV file: it contains binary data.",
    },
    { name: "CSV", size: 30, head: encode("Department Name,Date\nToys,1\n"), want: undefined },
    { name: "UTF-8 with BOM", size: 9, head: encode("\ufeffa,b,ç\n"), want: undefined },
    { name: "gzip (NUL bytes allowed)", size: 40, head: gzipSync("a,b\n"), want: undefined },
    { name: "NUL past the head", size: lateNul.length, head: lateNul, want: undefined },
  ];
  for (const { name, size, head, want } of cases) {
    await t.step(name, () => assert.equal(csvRefusal("x.csv", size, head), want));
  }
});
