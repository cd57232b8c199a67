/**
 * Tests that measure the memory of the test process itself, run alone in a child `deno test`:
 * `deno test --parallel` runs other test files in the same process, and what they allocate would
 * count against the test's limit.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runDeno } from "./_test_run_deno.ts";

/** Set in the child to the name of the one test it runs. */
const ALONE = "SALES_TEST_ALONE";

/**
 * Registers test `name` of the module at `moduleUrl` (its `import.meta.url`): in the test run it
 * starts a child `deno test` of that module filtered to this one test, which runs `fn` and must
 * pass.
 */
export function testAlone(moduleUrl: string, name: string, fn: () => Promise<void>): void {
  if (Deno.env.get(ALONE) === name) {
    Deno.test(name, fn);
    return;
  }
  Deno.test(name, async () => {
    const filter = `/^${name.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$/`;
    // The parent has type-checked the module already.
    const args = [
      "test",
      "--allow-all",
      "--no-check",
      "--filter",
      filter,
      fileURLToPath(moduleUrl),
    ];
    const { code, stdout, stderr } = await runDeno(args, { env: { [ALONE]: name, NO_COLOR: "1" } });
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /^ok \| 1 passed \| 0 failed/m, `the child ran no test:\n${stdout}`);
  });
}
