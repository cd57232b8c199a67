/** The process entry as users run it: `deno run server/main.ts` with an environment. */

import assert from "node:assert/strict";
import { loopbackEnv } from "./_test_loopback_env.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"];

function spawnMain(env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, MAIN],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("main.ts refuses to start on a bad variable and names it", async () => {
  const { code, stdout, stderr } = await spawnMain({ GRPC_PORT: "fifty", MAX_DEPARTMENTS: "0" })
    .output();
  const message = new TextDecoder().decode(stderr);
  assert.equal(code, 1);
  assert.match(message, /GRPC_PORT must be a whole number from 0 to 65535, got "fifty"/);
  assert.match(message, /MAX_DEPARTMENTS/);
  assert.doesNotMatch(message, /^\s+at /m, "no stack trace");
  assert.equal(new TextDecoder().decode(stdout), "");
});

Deno.test("main.ts prints where it listens and exits 0 on SIGINT", async () => {
  const storageDir = await Deno.makeTempDir({ prefix: "main_test_" });
  try {
    const child = spawnMain({
      ...loopbackEnv(storageDir),
    });
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let output = "";
    while (!output.includes("[HTTP] Serving results from")) {
      const { value, done } = await reader.read();
      if (done) assert.fail(`main.ts exited early:\n${output}\n${await stderr}`);
      output += value;
    }
    assert.match(output, /^\[gRPC\] Listening on 127\.0\.0\.1:\d+$/m);
    assert.match(
      output,
      new RegExp(`^\\[HTTP\\] Serving results from ${storageDir}/results$`, "m"),
    );
    child.kill("SIGINT");
    while (!(await reader.read()).done) {
      // Drain until the process closes stdout.
    }
    const { code } = await child.status;
    assert.equal(code, 0, await stderr);
  } finally {
    await Deno.remove(storageDir, { recursive: true });
  }
});
