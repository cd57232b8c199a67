import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const committedPath = fileURLToPath(new URL("./sales_pb.ts", import.meta.url));

Deno.test("sales_pb.ts matches what `deno task gen` generates from proto/sales.proto", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "sales_gen_" });
  try {
    // Runs the real task (buf + protoc-gen-es at their pinned versions) into a scratch folder.
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["task", "gen", "-o", outDir],
      cwd: repoRoot,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, `deno task gen failed:\n${new TextDecoder().decode(stderr)}`);
    const fresh = await Deno.readTextFile(`${outDir}/server/gen/sales_pb.ts`);
    const committed = await Deno.readTextFile(committedPath);
    assert.ok(
      committed === fresh,
      "server/gen/sales_pb.ts is stale: run `deno task gen` and commit the result",
    );
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});
