/**
 * Islands on the server, found the way Fresh finds them: every `islands/*.tsx` default export is
 * an island, named after its file ({@linkcode loadIslands}). A route imports an island and uses it
 * like any other component; once {@linkcode installIslandMarkers} has run, every island renders
 * inside a marker element that carries its name and serialized props. In the browser, the bundle
 * (`build.ts` generates its entry from the same folder) hydrates each marker with the same
 * component and props (`hydrate_islands.ts`). Adding an island is adding the file. Moving to Fresh
 * means deleting this file.
 *
 * @example
 * ```tsx
 * import { renderToString } from "preact-render-to-string";
 * import { h } from "preact";
 * import UploadIsland from "../../islands/UploadIsland.tsx";
 * import { installIslandMarkers, loadIslands } from "./islands.ts";
 *
 * installIslandMarkers(await loadIslands());
 * const html = renderToString(h(UploadIsland, { grpcWebUrl: "", maxUploadBytes: null }));
 * if (!html.startsWith('<div data-island="UploadIsland"')) throw new Error(html);
 * ```
 *
 * @module
 */

import { type ComponentType, h, options } from "preact";
import { importOneAtATime, TEST_FILE } from "./fs_routes.ts";

// deno-lint-ignore no-explicit-any
type AnyComponent = ComponentType<any>;

/** The `islands/` folder of the repository. */
export const DEFAULT_ISLANDS_DIR = new URL("../../islands/", import.meta.url);

/** An island's file: its name (the file's, without `.tsx`) and location. */
export interface IslandFile {
  name: string;
  url: URL;
}

/** Every island file in `dir`: its `*.tsx` files, except tests and `_` (private) files, by name. */
export async function findIslands(dir: URL = DEFAULT_ISLANDS_DIR): Promise<IslandFile[]> {
  const islands: IslandFile[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".tsx") || TEST_FILE.test(entry.name)) continue;
    if (entry.name.startsWith("_")) continue;
    islands.push({ name: entry.name.slice(0, -".tsx".length), url: new URL(entry.name, dir) });
  }
  return islands.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Imports every island in `dir`: its default export, by name. */
export async function loadIslands(
  dir: URL = DEFAULT_ISLANDS_DIR,
): Promise<Record<string, AnyComponent>> {
  const islands: Record<string, AnyComponent> = {};
  for (const { name, url } of await findIslands(dir)) {
    const component =
      (await importOneAtATime<{ default: AnyComponent | undefined }>(url.href)).default;
    if (typeof component !== "function") {
      throw new Error(`Island ${url.pathname} has no default export component`);
    }
    islands[name] = component;
  }
  return islands;
}

/** Every island installed so far, by component. */
const islandNames = new Map<AnyComponent, string>();

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

/**
 * Server only: from now on, rendering one of `islands` wraps it in its marker. Calling it again
 * adds islands; the rendering hook is installed once.
 */
export function installIslandMarkers(islands: Record<string, AnyComponent>): void {
  for (const [name, component] of Object.entries(islands)) islandNames.set(component, name);
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
