import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { csvRefusal } from "../server/aggregate/looks_like_csv.ts";
import { checkFile } from "./check_file.ts";

Deno.test("checkFile refuses what the commands refuse, in the same words", async (t) => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  const cases = [
    { name: "empty", file: new File([], "empty.csv", { type: "text/csv" }) },
    { name: "binary named .csv", file: new File([png], "photo.csv", { type: "text/csv" }) },
  ];
  for (const { name, file } of cases) {
    await t.step(name, async () => {
      const head = new Uint8Array(await file.arrayBuffer());
      const expected = csvRefusal(file.name, file.size, head);
      assert.ok(expected !== undefined);
      assert.equal(await checkFile(file, null), expected);
    });
  }
  assert.equal(
    await checkFile(new File([], "empty.csv"), null),
    "“empty.csv” is empty. Choose a file with a header and rows.",
  );
  assert.equal(
    await checkFile(new File([png], "photo.csv"), null),
    "“photo.csv” does not look like a CSV file: it contains binary data.",
  );
});

Deno.test("checkFile accepts CSV and gzip, and keeps the page's own name and size rules", async () => {
  const csv = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\n";
  assert.equal(await checkFile(new File([csv], "sales.csv"), null), undefined);
  assert.equal(await checkFile(new File([gzipSync(csv)], "sales.csv.gz"), null), undefined);
  assert.match(
    (await checkFile(new File([csv], "photo.png", { type: "image/png" }), null))!,
    /“photo\.png” is not a CSV file/,
  );
  assert.match((await checkFile(new File([csv], "sales.csv"), 10))!, /accepts files up to/);
});
