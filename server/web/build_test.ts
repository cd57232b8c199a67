import assert from "node:assert/strict";
import {
  buildIslands,
  ISLANDS_GZIP_BUDGET,
  islandsEntrySource,
  readIslandsManifest,
} from "./build.ts";

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

Deno.test("islandsEntrySource imports and hydrates every island of the folder, and nothing else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "build_test_islands_" });
  try {
    for (const name of ["Foo.tsx", "Bar.tsx", "Foo_test.tsx", "_private.tsx", "notes.md"]) {
      await Deno.writeTextFile(`${dir}/${name}`, "export default () => null;\n");
    }
    const source = await islandsEntrySource(new URL(`file://${dir}/`));
    const imported = [...source.matchAll(/^import (island\d) from "file:\/\/[^"]*\/([^"/]+)";$/gm)]
      .map((match) => match[2]);
    assert.deepEqual(imported, ["Bar.tsx", "Foo.tsx"]);
    assert.match(source, /hydrateIslands\(\{ "Bar": island0, "Foo": island1 \}\);/);
    assert.match(source, /^import \{ hydrateIslands \} from "file:\/\/.*\/hydrate_islands\.ts";$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
