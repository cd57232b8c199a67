import assert from "node:assert/strict";
import { h } from "preact";
import { renderToString } from "preact-render-to-string";
import { installIslandMarkers, loadIslands } from "./islands.ts";

Deno.test("loadIslands finds every island file, and installIslandMarkers wraps them in markers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "islands_test_" });
  try {
    await Deno.writeTextFile(
      `${dir}/Counter.tsx`,
      "export default ({ start }) => <button>{start}</button>;\n",
    );
    await Deno.writeTextFile(`${dir}/Counter_test.tsx`, "throw new Error('never imported');\n");
    await Deno.writeTextFile(`${dir}/_helper.tsx`, "export const helper = 1;\n");
    const islands = await loadIslands(new URL(`file://${dir}/`));
    assert.deepEqual(Object.keys(islands), ["Counter"]);
    installIslandMarkers(islands);
    const html = renderToString(h("main", null, h(islands.Counter, { start: 3 })));
    assert.equal(
      html,
      '<main><div data-island="Counter" data-island-props="{&quot;start&quot;:3}" class="island">' +
        "<button>3</button></div></main>",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIslands refuses an island file without a default export component", async () => {
  const dir = await Deno.makeTempDir({ prefix: "islands_test_" });
  try {
    await Deno.writeTextFile(`${dir}/Broken.tsx`, "export const notDefault = 1;\n");
    await assert.rejects(
      loadIslands(new URL(`file://${dir}/`)),
      /Island .*Broken\.tsx has no default export/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
