/**
 * `deno task compile` cannot run here (it downloads the Deno runtime it embeds), so these tests
 * check its inputs: every embedded path exists once the bundle is built, and the server finds its
 * assets relative to its own modules, which is how a compiled binary lays them out (`--include`d
 * files keep their place beside the code). That the entry point type-checks is `deno task
 * check`'s job (it covers server/).
 */

import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { SALES_PROTO_PATH } from "../server/grpc/sales_proto.ts";
import { DEFAULT_BUILD_DIR, readIslandsManifest } from "../server/web/build.ts";
import { permissionFlags, readDenoTasks, readRepoFile, REPO_ROOT } from "./_deploy_files.ts";

const ROOT_PATH = fromFileUrl(REPO_ROOT);

/** The `deno compile` arguments of `deno task compile`, and the commands run before it. */
async function readCompileTask() {
  const task = (await readDenoTasks()).compile;
  assert.ok(task, "deno.json has no compile task");
  const commands = task.split("&&").map((command) => command.trim().split(/\s+/));
  const compile = commands.at(-1)!;
  assert.deepEqual(compile.slice(0, 2), ["deno", "compile"]);
  const valuesOf = (flag: string) =>
    compile.flatMap((arg, i) =>
      arg === flag
        ? [compile[i + 1]]
        : arg.startsWith(`${flag}=`)
        ? [arg.slice(flag.length + 1)]
        : []
    );
  return {
    before: commands.slice(0, -1).map((command) => command.join(" ")),
    args: compile.slice(2),
    includes: valuesOf("--include"),
    output: valuesOf("--output").concat(valuesOf("-o")),
    entry: compile.at(-1)!,
  };
}

/** Repository-relative path of an absolute path or file URL. */
function repoRelative(path: string | URL): string {
  return relative(ROOT_PATH, path instanceof URL ? fromFileUrl(path) : path);
}

/** True when `path` (repository-relative) is an included file or inside an included folder. */
function isIncluded(path: string, includes: readonly string[]): boolean {
  return includes.some((include) => {
    const folder = include.replace(/\/$/, "");
    return path === folder || path.startsWith(`${folder}/`);
  });
}

async function ensureIslandBundle(): Promise<void> {
  if (await readIslandsManifest() !== undefined) return;
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "build"],
    cwd: ROOT_PATH,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

Deno.test("deno task compile builds the bundle, then compiles server/main.ts into dist/ with deno task start's permissions", async () => {
  const { before, args, output, entry } = await readCompileTask();
  const tasks = await readDenoTasks();
  assert.deepEqual(before, ["deno task build"]);
  assert.equal(entry, "server/main.ts");
  assert.equal(output.length, 1);
  assert.match(output[0], /^dist\/[a-z0-9-]+$/);
  const granted = permissionFlags(args);
  assert.ok(!granted.includes("-A") && !granted.includes("--allow-all"));
  assert.deepEqual(granted.sort(), permissionFlags(tasks.start.split(/\s+/)).sort());
  // The binary lands in a folder git ignores.
  assert.ok((await readRepoFile(".gitignore")).split("\n").includes("/dist/"));
});

Deno.test("deno task compile embeds the island bundle, static files and sales.proto, which exist after deno task build", async () => {
  const { includes } = await readCompileTask();
  await ensureIslandBundle();
  for (const include of includes) {
    await Deno.stat(new URL(include, REPO_ROOT)); // Throws NotFound when missing.
  }
  const manifest = await readIslandsManifest();
  assert.ok(manifest, "no island manifest after deno task build");
  for (
    const asset of [
      new URL(manifest.islands, DEFAULT_BUILD_DIR),
      new URL("manifest.json", DEFAULT_BUILD_DIR),
    ]
  ) {
    await Deno.stat(asset);
    assert.ok(isIncluded(repoRelative(asset), includes), `${repoRelative(asset)} is not embedded`);
  }
  assert.ok(isIncluded(repoRelative(SALES_PROTO_PATH), includes), "sales.proto is not embedded");
  for (const entry of Deno.readDirSync(new URL("static/", REPO_ROOT))) {
    assert.ok(isIncluded(`static/${entry.name}`, includes), `static/${entry.name} is not embedded`);
  }
});

Deno.test("server code reads its assets relative to its own modules, so the compiled binary finds them", async () => {
  const { includes } = await readCompileTask();
  const assetUrls: string[] = [];
  const cwdReads: string[] = [];
  const walk = async (folder: URL) => {
    for await (const entry of Deno.readDir(folder)) {
      const url = new URL(entry.isDirectory ? `${entry.name}/` : entry.name, folder);
      if (entry.isDirectory && entry.name !== "testdata") await walk(url);
      if (!entry.isFile || !/\.tsx?$/.test(entry.name) || /_test\.tsx?$|^_test_/.test(entry.name)) {
        continue;
      }
      const source = await Deno.readTextFile(url);
      for (
        const [, target] of source.matchAll(/new URL\(\s*"([^"]+)",\s*import\.meta\.url\s*\)/g)
      ) {
        const resolved = new URL(target, url);
        if (!/\.(ts|tsx)$/.test(resolved.pathname)) assetUrls.push(repoRelative(resolved));
      }
      // A path relative to the working directory breaks as soon as the binary runs elsewhere.
      const cwdRelative =
        /(readFile|readTextFile|loadSync|readFileSync)\(\s*["'`](\.\/|static\/|proto\/|routes\/|islands\/)/g;
      for (const match of source.matchAll(cwdRelative)) {
        cwdReads.push(`${repoRelative(url)}: ${match[0]}`);
      }
    }
  };
  await walk(new URL("server/", REPO_ROOT));
  assert.deepEqual(cwdReads, []);
  // At least the proto file and the static folder are found this way today.
  assert.ok(assetUrls.includes("proto/sales.proto"), assetUrls.join(", "));
  assert.ok(assetUrls.includes("static"), assetUrls.join(", "));
  for (const asset of assetUrls) {
    // The repository root itself (build.ts's base for static/build/) is not an asset.
    if (asset === "") continue;
    assert.ok(isIncluded(asset, includes), `${asset} is read at run time but not --include'd`);
  }
});
