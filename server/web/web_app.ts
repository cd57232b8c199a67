/**
 * The web port's one handler: server-rendered pages (`routes/`, routed from the file system as
 * Fresh 2 does, see `fs_routes.ts`), static assets (`static/`, with the island bundle under
 * `static/build/`), and gRPC-Web for `sales.v1.SalesService` and health checks. Serve it with
 * `Deno.serve({ port: config.webPort }, createWebHandler({ service, config }))`.
 *
 * Every request first passes the `Host` check ({@linkcode createHostCheck}); routing then uses the
 * request target's path only. RPC paths (`/package.Service/Method`) take POST (gRPC-Web, else 415)
 * and OPTIONS (CORS preflight); every other path takes GET and HEAD. A 405 names what the path
 * takes in `Allow`. Pages get {@linkcode State} as `ctx.state` and `props.state`; the island
 * bundle's script tags are added to every page here, as Fresh adds them.
 *
 * @example
 * ```ts
 * import { createWebHandler } from "./web_app.ts";
 * import { createFakeSalesService } from "./_test_fake_sales_service.ts";
 *
 * const handler = createWebHandler({
 *   service: createFakeSalesService().service,
 *   config: { grpcWebUrl: "", corsOrigins: [], maxMessageBytes: 64 << 20, maxUploadBytes: undefined },
 * });
 * const response = await handler(new Request("http://localhost:3000/"));
 * if (!(await response.text()).includes("Sales Aggregator")) throw new Error("no page");
 * ```
 *
 * @module
 */

import type { Config } from "../config.ts";
import { consoleLogger, type Logger } from "../logger.ts";
import type { BufferBudget } from "../service/buffer_budget.ts";
import { DownloadUrlVerifier } from "../service/download_url.ts";
import type { SalesService } from "../service/types.ts";
import { DEFAULT_BUILD_DIR, readIslandsManifest } from "./build.ts";
import type { DevReload } from "./dev_reload.ts";
import { type FsRoutes, HttpError, loadFsRoutes, type RenderedPage } from "./fs_routes.ts";
import { createGrpcWebHandler, isGrpcWebContentType, isRpcPath, RPC_METHODS } from "./grpc_web.ts";
import { createHostCheck, plainText } from "./host_check.ts";
import { DEFAULT_ISLANDS_DIR, installIslandMarkers, loadIslands } from "./islands.ts";
import { serveStaticFile } from "./static_files.ts";

/** Options of {@linkcode createWebHandler}. */
export interface WebHandlerOptions {
  /** The service implementation, shared with the grpc-js server. */
  service: SalesService;
  /**
   * The parts of the configuration the web port uses. Without `salesApiToken` no token is asked
   * for; without `allowedHosts` any host is answered.
   */
  config:
    & Pick<Config, "grpcWebUrl" | "corsOrigins" | "maxMessageBytes" | "maxUploadBytes">
    & Partial<Pick<Config, "salesApiToken" | "allowedHosts" | "salesUrlSecret">>;
  /** Bytes of request messages being received at once, shared with the gRPC port. @default {no limit} */
  budget?: BufferBudget;
  /** Folder of static assets. @default {static/ in the repository (embedded when compiled)} */
  staticDir?: URL;
  /** Folder of the island bundle and its manifest. @default {static/build/} */
  buildDir?: URL;
  /** `deno task dev` only: serves `/_dev/` and puts the reload script in every page. @default {off} */
  devReload?: DevReload;
  /** Where warnings and unexpected errors go. @default {consoleLogger} */
  logger?: Logger;
  /** Folder of the pages, scanned once. @default {routes/ in the repository} */
  routesDir?: URL;
  /** Folder of the islands, scanned once. @default {islands/ in the repository} */
  islandsDir?: URL;
}

/** What every page's handler gets as `ctx.state` (and its component as `props.state`). */
export interface State {
  /** The service, shared with the gRPC port. */
  service: SalesService;
  /** The gRPC-Web endpoint the browser calls (`GRPC_WEB_URL`); empty means this origin. */
  grpcWebUrl: string;
  /** The largest upload accepted (`MAX_UPLOAD_BYTES`), or null when unlimited. */
  maxUploadBytes: number | null;
  /** The page title, set by the page's handler; `_app.tsx` shows it. */
  title?: string;
  /** Checks a result page's signed address (`SALES_URL_SECRET`); accepts all when unsigned. */
  pageLinks: Pick<DownloadUrlVerifier, "verifyPage">;
  /**
   * Whether every RPC requires `SALES_API_TOKEN`: result pages are then rendered in the browser,
   * after the person gives the token, never by the server.
   */
  tokenRequired: boolean;
}

const DEFAULT_STATIC_DIR = new URL("../../static/", import.meta.url);
const DEFAULT_ROUTES_DIR = new URL("../../routes/", import.meta.url);

/** `"` and `&` escaped, for a URL we put in an attribute. */
function attribute(value: string): string {
  return value.replaceAll("&", "&amp;").replaceAll('"', "&quot;");
}

/** Builds the handler for pages, static assets and gRPC-Web. */
export function createWebHandler(
  options: WebHandlerOptions,
): (request: Request, info?: Deno.ServeHandlerInfo) => Promise<Response> {
  const { service, config, devReload } = options;
  const logger = options.logger ?? consoleLogger;
  const staticDir = options.staticDir ?? DEFAULT_STATIC_DIR;
  const buildDir = options.buildDir ?? DEFAULT_BUILD_DIR;
  const routesDir = options.routesDir ?? DEFAULT_ROUTES_DIR;
  // Scanned once, at start-up; requests wait for it. Islands first: pages render them.
  const pages: Promise<FsRoutes> = loadIslands(options.islandsDir ?? DEFAULT_ISLANDS_DIR)
    .then(installIslandMarkers)
    .then(() => loadFsRoutes(routesDir));
  pages.catch((error) => logger.error("[web] Loading the pages failed:", error));
  const grpcWeb = createGrpcWebHandler({
    service,
    corsOrigins: config.corsOrigins,
    readMaxBytes: config.maxMessageBytes,
    apiToken: config.salesApiToken,
    budget: options.budget,
    logger,
  });
  const checkHost = createHostCheck({ allowedHosts: config.allowedHosts });
  const pageLinks = new DownloadUrlVerifier({ secret: config.salesUrlSecret });
  const tokenRequired = (config.salesApiToken ?? "") !== "";
  const contentSecurityPolicy = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self'${config.grpcWebUrl ? ` ${new URL(config.grpcWebUrl).origin}` : ""}`,
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
  ].join("; ");
  let warnedNoBundle = false;

  async function islandsUrl(): Promise<string | undefined> {
    if (devReload !== undefined) {
      // Wait for the build this dev server started: never link the bundle of the code before.
      await devReload.ready;
      const name = devReload.islandsName();
      return name && `/static/build/${name}`;
    }
    // Read per page: a `deno task build` while the server runs shows up without a restart.
    const manifest = await readIslandsManifest(buildDir);
    if (manifest === undefined && !warnedNoBundle) {
      warnedNoBundle = true;
      logger.warn("[web] No island bundle in static/build/: run `deno task build`");
    }
    return manifest && `/static/build/${manifest.islands}`;
  }

  function newState(): State {
    return {
      service,
      grpcWebUrl: config.grpcWebUrl,
      maxUploadBytes: config.maxUploadBytes ?? null,
      pageLinks,
      tokenRequired,
    };
  }

  /** Sends a rendered page with the island bundle's tags and the page headers. */
  async function send(request: Request, rendered: RenderedPage): Promise<Response> {
    let html = rendered.html;
    const islands = await islandsUrl();
    const devReloadUrl = devReload?.scriptUrl();
    if (islands !== undefined) {
      const head = html.lastIndexOf("</head>");
      const preload = `<link rel="modulepreload" href="${attribute(islands)}"/>`;
      if (head !== -1) html = html.slice(0, head) + preload + html.slice(head);
    }
    const scripts = [islands, devReloadUrl].filter((url) => url !== undefined)
      .map((url) => `<script type="module" src="${attribute(url)}"></script>`).join("");
    const body = html.lastIndexOf("</body>");
    html = body === -1 ? html + scripts : html.slice(0, body) + scripts + html.slice(body);
    const headers = new Headers({
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-cache",
      "content-security-policy": contentSecurityPolicy,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    });
    for (const [name, value] of rendered.headers) headers.set(name, value);
    return new Response(request.method === "HEAD" ? null : html, {
      status: rendered.status,
      headers,
    });
  }

  async function notFound(request: Request, path: string): Promise<Response> {
    const routes = await pages;
    const error = new HttpError(404, `No page at ${path}`);
    return await send(request, await routes.renderError(request, path, newState(), error));
  }

  async function route(request: Request, info?: Deno.ServeHandlerInfo): Promise<Response> {
    const target = checkHost(request, info);
    if (target instanceof Response) return target;
    const { path } = target;
    const grpcWebCall = request.method === "POST" &&
      isGrpcWebContentType(request.headers.get("content-type"));
    if (isRpcPath(path)) {
      if (grpcWebCall || request.method === "OPTIONS") return await grpcWeb(request, info, path);
      if (request.method === "POST") {
        request.body?.cancel().catch(() => {});
        const type = request.headers.get("content-type") ?? "(none)";
        return plainText(
          415,
          `Unsupported content type ${type} for ${path}: gRPC-Web calls send application/grpc-web(+proto) or application/grpc-web-text, and native gRPC goes to the gRPC port`,
        );
      }
      return plainText(405, `Method ${request.method} not allowed for ${path}`, {
        allow: RPC_METHODS,
      });
    }
    // A gRPC-Web client given a wrong base URL still gets a gRPC status it can show (UNIMPLEMENTED).
    if (grpcWebCall) return await grpcWeb(request, info, path);
    if (request.method !== "GET" && request.method !== "HEAD") {
      request.body?.cancel().catch(() => {});
      return plainText(405, `Method ${request.method} not allowed for ${path}`, {
        allow: "GET, HEAD",
      });
    }
    if (devReload !== undefined && path.startsWith("/_dev/")) {
      return await devReload.handle(request, path);
    }
    if (path === "/favicon.svg") return await serveStaticFile(request, staticDir, "favicon.svg");
    if (path.startsWith("/static/build/")) {
      // Only the content-hashed bundles: anything else there (the manifest) is internal.
      const name = path.slice("/static/build/".length);
      if (/^islands-[0-9a-f]+\.js$/.test(name)) {
        return await serveStaticFile(request, buildDir, name, { immutable: true });
      }
      return await notFound(request, path);
    }
    if (path.startsWith("/static/")) {
      return await serveStaticFile(request, staticDir, path.slice("/static/".length));
    }
    // A page of routes/, or the error page with a 404.
    const answer = await (await pages).render(request, path, newState());
    if (answer instanceof Response) {
      return request.method === "HEAD" && answer.body !== null
        ? (answer.body.cancel().catch(() => {}), new Response(null, answer))
        : answer;
    }
    return await send(request, answer);
  }

  /** The error page with a 500 and a generic message; the cause is logged, never shown. */
  async function internalError(request: Request, error: unknown): Promise<Response> {
    logger.error("[web] Unexpected error:", error);
    try {
      const path = new URL(request.url).pathname;
      const routes = await pages;
      const generic = new Error("Internal server error");
      return await send(request, await routes.renderError(request, path, newState(), generic));
    } catch (renderError) {
      logger.error("[web] Rendering the error page failed:", renderError);
      return new Response("Internal server error\n", {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
  }

  return async function handleWeb(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Response> {
    try {
      return await route(request, info);
    } catch (error) {
      return await internalError(request, error);
    }
  };
}
