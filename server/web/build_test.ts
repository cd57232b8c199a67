import assert from "node:assert/strict";
import { buildIslands, ISLANDS_GZIP_BUDGET, readIslandsManifest } from "./build.ts";

Deno.test("buildIslands writes a hashed, minified browser bundle within its 60 KB gzip budget", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "build_test_" });
  try {
    const outUrl = new URL(`file://${outDir}/`);
    await Deno.writeTextFile(`${outDir}/islands-00000000deadbeef.js`, "stale");
    const result = await buildIslands({ outDir: outUrl });
    assert.ok(
      result.gzipBytes <= ISLANDS_GZIP_BUDGET,
      `island bundle is ${result.gzipBytes} bytes gzip, over ${ISLANDS_GZIP_BUDGET}`,
    );
    const manifest = await readIslandsManifest(outUrl);
    assert.match(manifest?.islands ?? "", /^islands-[0-9a-f]{16}\.js$/);
    const names = [...Deno.readDirSync(outDir)].map((entry) => entry.name).sort();
    assert.deepEqual(names, [manifest!.islands, "manifest.json"]);
    const code = await Deno.readTextFile(`${outDir}/${manifest!.islands}`);
    assert.equal(code.length, result.bytes);
    // Minified, for the browser, and it hydrates islands by their markers.
    assert.ok(code.split("\n").length < 20, "bundle does not look minified");
    assert.match(code, /data-island|\[data-island\]/);
    assert.doesNotMatch(code, /Deno\.|node:/);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("readIslandsManifest answers undefined before any build", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "build_test_" });
  try {
    assert.equal(await readIslandsManifest(new URL(`file://${outDir}/`)), undefined);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});
