/**
 * Islands, wired the way Fresh does it, in one place: a route imports an island component and
 * uses it like any other; on the server, {@linkcode installIslandMarkers} makes every island render
 * inside a marker element that carries its name and serialized props; in the browser, the bundle
 * entry (`islands_entry.ts`) calls {@linkcode hydrateIslands}, which hydrates each marker with
 * the same component and props. To add an island, add it to {@linkcode ISLANDS}. Moving to Fresh
 * means deleting this file: Fresh finds `islands/` by itself.
 *
 * @example
 * ```tsx
 * import { renderToString } from "preact-render-to-string";
 * import { h } from "preact";
 * import UploadIsland from "../../islands/UploadIsland.tsx";
 * import { installIslandMarkers } from "./islands.ts";
 *
 * installIslandMarkers();
 * const html = renderToString(h(UploadIsland, { grpcWebUrl: "", maxUploadBytes: null }));
 * if (!html.startsWith('<div data-island="UploadIsland"')) throw new Error(html);
 * ```
 *
 * @module
 */

import { type ComponentType, h, hydrate, options } from "preact";
import UploadIsland from "../../islands/UploadIsland.tsx";

// deno-lint-ignore no-explicit-any
type AnyComponent = ComponentType<any>;

/** Every island, by the name its marker carries. */
export const ISLANDS: Record<string, AnyComponent> = { UploadIsland };

const islandNames = new Map<AnyComponent, string>(
  Object.entries(ISLANDS).map(([name, component]) => [component, name]),
);

/** Set on the inner vnode of a marker so the hook below does not wrap it a second time. */
const INSIDE_MARKER = "__islandInsideMarker";

/** The element around an island's server-rendered markup; `display: contents` in the CSS. */
function IslandMarker(
  { name, component, islandProps }: {
    name: string;
    component: AnyComponent;
    islandProps: Record<string, unknown>;
  },
) {
  return h(
    "div",
    { "data-island": name, "data-island-props": JSON.stringify(islandProps), class: "island" },
    h(component, { ...islandProps, [INSIDE_MARKER]: true }),
  );
}

let installed = false;

/** Server only: from now on, rendering an island component wraps it in its marker. Idempotent. */
export function installIslandMarkers(): void {
  if (installed) return;
  installed = true;
  const previous = options.vnode;
  options.vnode = (vnode) => {
    const name = islandNames.get(vnode.type as AnyComponent);
    if (name !== undefined) {
      const props = vnode.props as Record<string, unknown>;
      if (props[INSIDE_MARKER]) {
        delete props[INSIDE_MARKER];
      } else {
        const { children: _children, ...islandProps } = props;
        vnode.props = { name, component: vnode.type, islandProps } as unknown as typeof vnode.props;
        vnode.type = IslandMarker as typeof vnode.type;
      }
    }
    previous?.(vnode);
  };
}

/** Browser only: hydrates every island marker in `root` with its component and props. */
export function hydrateIslands(root: ParentNode = document): void {
  for (const marker of root.querySelectorAll<HTMLElement>("[data-island]")) {
    const component = ISLANDS[marker.dataset.island ?? ""];
    if (component === undefined) {
      console.error(`Unknown island ${marker.dataset.island}`);
      continue;
    }
    const props = JSON.parse(marker.dataset.islandProps ?? "{}");
    hydrate(h(component, props), marker);
    // Lets tests (and curious people) see that the island is live.
    marker.dataset.hydrated = "true";
  }
}
