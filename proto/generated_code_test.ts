import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const genDir = fileURLToPath(new URL("../gen/", import.meta.url));

/** Paths of the generated TypeScript files under `dir`, relative to it, sorted. */
async function generatedFiles(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) found.push(...await generatedFiles(dir, `${path}/`));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found.sort();
}

Deno.test("gen matches what `deno task gen` generates from proto/", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "sales_gen_" });
  try {
    // Runs the real task (buf + protoc-gen-es, then proto-loader-gen-types, at their pinned
    // versions) into a scratch folder: GEN_ROOT prefixes every output path of the task.
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["task", "gen"],
      cwd: repoRoot,
      env: { GEN_ROOT: `${outDir}/` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, `deno task gen failed:\n${new TextDecoder().decode(stderr)}`);
    const freshDir = `${outDir}/gen`;
    const fresh = await generatedFiles(freshDir);
    assert.deepEqual(
      await generatedFiles(genDir),
      fresh,
      "gen/ holds other files than `deno task gen` makes: run it and commit the result",
    );
    assert.ok(fresh.includes("sales_pb.ts") && fresh.includes("grpc/health/v1/health_pb.ts"));
    assert.ok(
      fresh.includes("proto_loader/sales.ts") &&
        fresh.includes("proto_loader/sales/v1/SalesService.ts"),
    );
    for (const path of fresh) {
      const committed = await Deno.readTextFile(`${genDir}/${path}`);
      assert.ok(
        committed === await Deno.readTextFile(`${freshDir}/${path}`),
        `gen/${path} is stale: run \`deno task gen\` and commit the result`,
      );
    }
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});
