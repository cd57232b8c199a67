/**
 * Islands in the browser: the bundle's entry, which `build.ts` generates from the `islands/`
 * folder, imports every island and passes them to {@linkcode hydrateIslands}. The server side is
 * `islands.ts`; this module stays free of Deno APIs because it is bundled for the browser.
 *
 * @module
 */

import { type ComponentType, h, hydrate } from "preact";

/** Hydrates every island marker in `root` with its component (by name) and props. */
export function hydrateIslands(
  // deno-lint-ignore no-explicit-any
  islands: Record<string, ComponentType<any>>,
  root: ParentNode = document,
): void {
  for (const marker of root.querySelectorAll<HTMLElement>("[data-island]")) {
    const name = marker.dataset.island ?? "";
    const component = Object.hasOwn(islands, name) ? islands[name] : undefined;
    if (component === undefined) {
      console.error(`Unknown island ${name}`);
      continue;
    }
    const props = JSON.parse(marker.dataset.islandProps ?? "{}");
    hydrate(h(component, props), marker);
    // Lets tests (and curious people) see that the island is live.
    marker.dataset.hydrated = "true";
  }
}
