/**
 * Pages routed from the file system, with Fresh 2's conventions, so that moving to Fresh is
 * mechanical: {@linkcode loadFsRoutes} scans `routes/` once at start-up and imports every route
 * module. A file's path is its URL: `index.tsx` is `/`, `about.tsx` is `/about`, `r/[id].tsx` is
 * `/r/:id` (`params.id`), `[...rest].tsx` catches the rest (`params.rest`, possibly empty), and
 * `(group)` folders add nothing to the URL. Files starting with `_` are not routes: `_app.tsx`
 * wraps every page, `_error.tsx` renders errors (a 404 is an {@linkcode HttpError} with status 404).
 * Test files (`*_test.tsx`, `*.test.tsx`) are skipped.
 *
 * A route module's default export is its page component. Its optional `handler` (one function, or
 * one per method) gets a {@linkcode RouteContext} and returns a `Response` (sent as is) or
 * {@linkcode page}`(data)`, which renders the page with `props.data`. Without a handler the page
 * renders with `data` undefined. A `HEAD` runs the `HEAD` handler, else the `GET` one.
 *
 * @example
 * ```ts
 * import { loadFsRoutes } from "./fs_routes.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.tsx`, "export default () => <p>Hello</p>;\n");
 * const routes = await loadFsRoutes(new URL(`file://${dir}/`));
 * const answer = await routes.render(new Request("http://localhost/hello"), "/hello", {});
 * if (answer instanceof Response || !answer.html.includes("<p>Hello</p>")) throw new Error();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { type ComponentType, h } from "preact";
import { renderToString } from "preact-render-to-string";

/** What a handler and a page receive about the request (Fresh 2's `Context`). */
export interface RouteContext<State = Record<string, unknown>> {
  /** The request. */
  req: Request;
  /** Its URL, with the path the router matched. */
  url: URL;
  /** The dynamic segments of the route, decoded: `params.id` for `r/[id].tsx`. */
  params: Record<string, string>;
  /** Per-request values the server provides (services, configuration) and handlers may add to. */
  state: State;
  /** `_error.tsx` only: what was thrown; a missing page is an {@linkcode HttpError} 404. */
  error?: unknown;
}

/** What a page component receives (Fresh 2's `PageProps`). */
export interface PageProps<Data = undefined, State = Record<string, unknown>>
  extends Omit<RouteContext<State>, "req"> {
  /** What the handler passed to {@linkcode page}. */
  data: Data;
  /** `_app.tsx` only: the page to render inside the shell. */
  Component: ComponentType;
}

/** A handler's answer that renders the page (Fresh 2's `PageResponse`). */
export interface PageResponse<Data> {
  /** Passed to the page as `props.data`. */
  data: Data;
  /** The response status. @default {200} */
  status?: number;
  /** Headers added to the page's own (they win over the defaults). */
  headers?: HeadersInit;
}

/** A handler for one method, or for all. */
export type RouteHandler<Data = unknown, State = Record<string, unknown>> = (
  ctx: RouteContext<State>,
) =>
  | Response
  | PageResponse<Data>
  | Promise<Response | PageResponse<Data>>;

/** A route module's `handler` export: one function, or one per method (Fresh 2's `Handlers`). */
export type RouteHandlers<Data = unknown, State = Record<string, unknown>> =
  | RouteHandler<Data, State>
  | Partial<Record<"GET" | "HEAD", RouteHandler<Data, State>>>;

/** Renders the page with `data` (Fresh 2's `page()`): return it from a handler. */
export function page<Data>(
  data: Data,
  options: { status?: number; headers?: HeadersInit } = {},
): PageResponse<Data> {
  return { data, ...options };
}

/** An error with an HTTP status, rendered by `_error.tsx` with that status (Fresh 2's). */
export class HttpError extends Error {
  override name = "HttpError";
  /** The response status, 404 for a missing page. */
  readonly status: number;
  constructor(status: number, message = `HTTP ${status}`, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
  }
}

/** What a module in `routes/` may export. */
export interface RouteModule {
  // deno-lint-ignore no-explicit-any
  default?: ComponentType<any>;
  // deno-lint-ignore no-explicit-any
  handler?: RouteHandlers<any, any>;
}

/** A page rendered to HTML, for the web app to send with its headers. */
export interface RenderedPage {
  status: number;
  /** The handler's extra headers, if any. */
  headers: Headers;
  /** The whole document, starting with `<!DOCTYPE html>`. */
  html: string;
}

/** One route: its file, URL pattern and module. */
export interface FsRoute {
  /** Path inside `routes/`, with `/` separators (`r/[id].tsx`). */
  file: string;
  /** The pattern in `URLPattern` syntax (`/r/:id`). */
  pattern: string;
  module: RouteModule;
}

/** The routes found in a folder. */
export interface FsRoutes {
  /** Every route, in the order they are tried: static segments before dynamic, catch-all last. */
  readonly routes: readonly FsRoute[];
  /**
   * Answers a GET or HEAD for `path`: the matching route's page or handler `Response`, or the
   * error page with a 404. Anything else a handler or page throws propagates: pass it to
   * {@linkcode FsRoutes.renderError}.
   */
  render(request: Request, path: string, state: object): Promise<Response | RenderedPage>;
  /** Renders `_error.tsx` for `error`: an {@linkcode HttpError}'s status, else 500. */
  renderError(request: Request, path: string, state: object, error: unknown): Promise<RenderedPage>;
}

/** Matches Fresh's test files, which are never routes or islands. */
export const TEST_FILE = /[._]test\.[cm]?[jt]sx?$/;
const MODULE_FILE = /\.[cm]?[jt]sx?$/;

/** The `URLPattern` pathname of a route file (`r/[id].tsx` → `/r/:id`), Fresh's naming. */
export function routePattern(file: string): string {
  const segments = file.replace(MODULE_FILE, "").split("/")
    .filter((segment) => !/^\(.+\)$/.test(segment));
  if (segments.at(-1) === "index") segments.pop();
  const parts = segments.map((segment) => {
    const catchAll = segment.match(/^\[\.\.\.([A-Za-z_][A-Za-z0-9_]*)\]$/);
    if (catchAll) return `:${catchAll[1]}*`;
    return segment.replace(/\[([A-Za-z_][A-Za-z0-9_]*)\]/g, ":$1");
  });
  // A catch-all may match nothing: `/blog/:rest*` also answers `/blog`, and a top-level one `/`.
  if (parts.length === 1 && parts[0].endsWith("*")) return `/${parts[0].slice(0, -1)}(.*)`;
  return `/${parts.join("/")}`;
}

/** Orders routes as Fresh does: per segment, static before dynamic before catch-all. */
function rank(pattern: string): number[] {
  return pattern.split("/").slice(1).map((segment) =>
    /[*)]$/.test(segment) ? 2 : segment.includes(":") ? 1 : 0
  );
}

function compareRoutes(a: FsRoute, b: FsRoute): number {
  const ra = rank(a.pattern), rb = rank(b.pattern);
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    if (ra[i] !== rb[i]) return ra[i] - rb[i];
  }
  // On equal prefixes the shorter first: `/blog` before `/blog/:rest*`, `/` before `/:rest(.*)`.
  if (ra.length !== rb.length) return ra.length - rb.length;
  return a.pattern < b.pattern ? -1 : a.pattern > b.pattern ? 1 : 0;
}

/** Every module file below `dir`, relative, `/`-separated, sorted. */
async function listModules(dir: URL, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL(prefix, dir))) {
    if (entry.isDirectory) {
      files.push(...await listModules(dir, `${prefix}${entry.name}/`));
    } else if (MODULE_FILE.test(entry.name) && !TEST_FILE.test(entry.name)) {
      files.push(`${prefix}${entry.name}`);
    }
  }
  return files.sort();
}

function decodeParam(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** The default error page when `routes/_error.tsx` is missing. */
function DefaultErrorPage({ error }: { error?: unknown }) {
  const status = error instanceof HttpError ? error.status : 500;
  return h("main", { id: "main" }, h("h1", null, status === 404 ? "Page not found" : "Error"));
}

/** The default shell when `routes/_app.tsx` is missing. */
function DefaultApp({ Component }: { Component: ComponentType }) {
  return h("html", null, h("body", null, h(Component, null)));
}

/** The tail of the dynamic imports in flight; each waits for the one before. */
let importsInFlight: Promise<unknown> = Promise.resolve();

/**
 * `import(url)`, one at a time in this isolate. Deno 2.9.3 can panic ("RefCell already borrowed")
 * when a dynamic import starts while another is still registering its modules
 * (denoland/deno#36216, fixed upstream by denoland/deno#36258), as when two web handlers load their
 * pages at once.
 */
export function importOneAtATime<T>(url: string): Promise<T> {
  const imported = importsInFlight.then(() => import(url) as Promise<T>);
  importsInFlight = imported.catch(() => {});
  return imported;
}

/**
 * Scans `dir` (Fresh's `routes/`) and imports every route module. Adding a file there adds a page,
 * from the next start.
 */
export async function loadFsRoutes(dir: URL): Promise<FsRoutes> {
  const files = await listModules(dir);
  const load = (file: string) => importOneAtATime<RouteModule>(new URL(file, dir).href);
  const special = new Map<string, RouteModule>();
  const routes: FsRoute[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    const name = file.split("/").at(-1)!;
    if (name.startsWith("_")) {
      // Only the top-level ones mean something; a `_` file elsewhere is private to its folder.
      if (!file.includes("/")) special.set(file.replace(MODULE_FILE, ""), await load(file));
      continue;
    }
    const pattern = routePattern(file);
    const clash = seen.get(pattern);
    if (clash !== undefined) {
      throw new Error(`Routes ${clash} and ${file} in ${dir.pathname} both serve ${pattern}`);
    }
    seen.set(pattern, file);
    routes.push({ file, pattern, module: await load(file) });
  }
  routes.sort(compareRoutes);
  const matchers = routes.map((route) => ({
    route,
    urlPattern: new URLPattern({ pathname: route.pattern }),
  }));
  const App = special.get("_app")?.default ?? DefaultApp;
  const errorRoute: RouteModule = special.get("_error") ?? { default: DefaultErrorPage };

  function urlOf(request: Request, path: string): URL {
    const url = new URL(request.url);
    url.pathname = path;
    return url;
  }

  async function runHandler(
    module: RouteModule,
    ctx: RouteContext<object>,
  ): Promise<Response | PageResponse<unknown>> {
    const handlers = module.handler;
    if (handlers === undefined) return { data: undefined };
    if (typeof handlers === "function") return await handlers(ctx);
    const handler = (ctx.req.method === "HEAD" ? handlers.HEAD : undefined) ?? handlers.GET;
    if (handler === undefined) return { data: undefined };
    return await handler(ctx);
  }

  function renderPage(
    file: string,
    module: RouteModule,
    ctx: RouteContext<object>,
    answer: PageResponse<unknown>,
    defaultStatus: number,
  ): RenderedPage {
    const Page = module.default;
    if (Page === undefined) {
      throw new Error(`Route ${file} answered page data but has no default export to render it`);
    }
    const { req: _req, ...rest } = ctx;
    const props = { ...rest, data: answer.data };
    const html = "<!DOCTYPE html>" + renderToString(
      h(App, { ...props, Component: () => h(Page, props) }),
    );
    return {
      status: answer.status ?? defaultStatus,
      headers: new Headers(answer.headers),
      html,
    };
  }

  async function renderError(
    request: Request,
    path: string,
    state: object,
    error: unknown,
  ): Promise<RenderedPage> {
    const status = error instanceof HttpError ? error.status : 500;
    const ctx = { req: request, url: urlOf(request, path), params: {}, state, error };
    // A handler of `_error.tsx` may set state and data; the status stays the error's.
    const answer = await runHandler(errorRoute, ctx);
    const data = answer instanceof Response ? undefined : answer.data;
    return renderPage("_error.tsx", errorRoute, ctx, { data }, status);
  }

  async function render(
    request: Request,
    path: string,
    state: object,
  ): Promise<Response | RenderedPage> {
    for (const { route, urlPattern } of matchers) {
      const match = urlPattern.exec({ pathname: path });
      if (match === null) continue;
      const params: Record<string, string> = {};
      for (const [key, value] of Object.entries(match.pathname.groups)) {
        params[key] = decodeParam(value ?? "");
      }
      const ctx = { req: request, url: urlOf(request, path), params, state };
      try {
        const answer = await runHandler(route.module, ctx);
        if (answer instanceof Response) return answer;
        return renderPage(route.file, route.module, ctx, answer, 200);
      } catch (error) {
        if (error instanceof HttpError) return await renderError(request, path, state, error);
        throw error;
      }
    }
    return await renderError(request, path, state, new HttpError(404, `No page at ${path}`));
  }

  return { routes, render, renderError };
}
