/**
 * `deno task build`: bundles every island in `islands/` with `deno bundle` (minified, for the
 * browser) into `static/build/islands-<hash>.js` and records the name in
 * `static/build/manifest.json`, which the page reads to link it. The hash in the name lets the
 * bundle be cached forever. The bundle is built, not committed: `deno task start` runs this first,
 * and `deno task dev` runs it in-process each time the server (re)starts (`dev_reload.ts`).
 *
 * The bundle's entry is generated: it imports each island the way the server finds them
 * (`islands.ts`), so that adding `islands/Foo.tsx` needs no other edit, and hydrates them
 * (`hydrate_islands.ts`).
 *
 * @module
 */

import { gzip } from "node:zlib";
import { promisify } from "node:util";
import { DEFAULT_ISLANDS_DIR, findIslands } from "./islands.ts";
import { sha256Hex } from "../storage/hex.ts";

/** What the page needs to know about the build. */
export interface IslandsManifest {
  /** File name of the island bundle inside the build folder. */
  islands: string;
}

/** The outcome of {@linkcode buildIslands}. */
export interface BuildResult {
  /** Path of the bundle written. */
  path: string;
  /** Its size in bytes, and gzip-compressed (level 9). */
  bytes: number;
  gzipBytes: number;
}

/** Options of {@linkcode buildIslands}. */
export interface BuildOptions {
  /** Folder for the bundle and manifest. @default {static/build/ in the repository} */
  outDir?: URL;
  /** Folder of the islands to bundle. @default {islands/ in the repository} */
  islandsDir?: URL;
}

const REPO_ROOT = new URL("../../", import.meta.url);
const HYDRATE_ISLANDS = new URL("./hydrate_islands.ts", import.meta.url);
/** Where the bundle and manifest go by default, and where the web app looks for them. */
export const DEFAULT_BUILD_DIR = new URL("static/build/", REPO_ROOT);
/** The island bundle's size budget, gzip-compressed. */
export const ISLANDS_GZIP_BUDGET = 60 * 1024;

/** Reads the manifest in `buildDir`, or undefined when nothing has been built there. */
export async function readIslandsManifest(
  buildDir: URL = DEFAULT_BUILD_DIR,
): Promise<IslandsManifest | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(new URL("manifest.json", buildDir)));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** The source of the bundle's entry: imports every island in `islandsDir` and hydrates them. */
export async function islandsEntrySource(islandsDir: URL = DEFAULT_ISLANDS_DIR): Promise<string> {
  const islands = await findIslands(islandsDir);
  const lines = [
    `import { hydrateIslands } from ${JSON.stringify(HYDRATE_ISLANDS.href)};`,
    ...islands.map(({ url }, i) => `import island${i} from ${JSON.stringify(url.href)};`),
    `hydrateIslands({ ${
      islands.map(({ name }, i) => `${JSON.stringify(name)}: island${i}`).join(", ")
    } });`,
  ];
  return lines.join("\n") + "\n";
}

/** Bundles the islands, writes the hashed bundle and the manifest, and removes older bundles. */
export async function buildIslands(options: BuildOptions = {}): Promise<BuildResult> {
  const outDir = options.outDir ?? DEFAULT_BUILD_DIR;
  const scratch = await Deno.makeTempDir({ prefix: "islands_build_" });
  try {
    const scratchFile = `${scratch}/islands.js`;
    const entry = `${scratch}/islands_entry.ts`;
    await Deno.writeTextFile(entry, await islandsEntrySource(options.islandsDir));
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        // The npm packages from Deno's global cache, fetched as imported: the build needs no
        // node_modules/ and no dev tools (see "nodeModulesDir" in docs/development.md).
        "--node-modules-dir=none",
        "--quiet",
        // The entry lives in the scratch folder: resolve the islands' imports with our config.
        "--config",
        new URL("deno.json", REPO_ROOT).pathname,
        "--platform=browser",
        "--minify",
        "--output",
        scratchFile,
        entry,
      ],
      cwd: REPO_ROOT.pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      throw new Error(`deno bundle failed:\n${new TextDecoder().decode(stderr)}`);
    }
    const bundle = await Deno.readFile(scratchFile);
    const name = `islands-${(await sha256Hex(bundle)).slice(0, 16)}.js`;
    await Deno.mkdir(outDir, { recursive: true });
    const path = new URL(name, outDir);
    // Write beside, then rename: a server reading the folder never sees half a file.
    await Deno.writeFile(new URL(`.${name}.tmp`, outDir), bundle);
    await Deno.rename(new URL(`.${name}.tmp`, outDir), path);
    const manifest: IslandsManifest = { islands: name };
    await Deno.writeTextFile(
      new URL(".manifest.json.tmp", outDir),
      JSON.stringify(manifest) + "\n",
    );
    await Deno.rename(new URL(".manifest.json.tmp", outDir), new URL("manifest.json", outDir));
    for await (const entry of Deno.readDir(outDir)) {
      if (/^islands-[0-9a-f]+\.js$/.test(entry.name) && entry.name !== name) {
        await Deno.remove(new URL(entry.name, outDir));
      }
    }
    const gzipBytes = (await promisify(gzip)(bundle, { level: 9 })).length;
    return { path: path.pathname, bytes: bundle.length, gzipBytes };
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

if (import.meta.main) {
  const result = await buildIslands();
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  console.log(
    `[build] ${result.path.replace(REPO_ROOT.pathname, "")}: ${kb(result.bytes)}, ${
      kb(result.gzipBytes)
    } gzip (budget ${kb(ISLANDS_GZIP_BUDGET)})`,
  );
  if (result.gzipBytes > ISLANDS_GZIP_BUDGET) {
    console.error("[build] The island bundle is over its gzip budget");
    Deno.exit(1);
  }
}
