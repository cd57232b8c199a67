/**
 * The web port's one handler: server-rendered pages (`routes/`), static assets (`static/`, with the
 * island bundle under `static/build/`), and gRPC-Web for `sales.v1.SalesService` and health checks.
 * Serve it with `Deno.serve({ port: config.webPort }, createWebHandler({ service, config }))`.
 *
 * Every request first passes the `Host` check ({@linkcode createHostCheck}); routing then uses the
 * request target's path only. RPC paths (`/package.Service/Method`) take POST (gRPC-Web, else 415)
 * and OPTIONS (CORS preflight); every other path takes GET and HEAD. A 405 names what the path
 * takes in `Allow`.
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

import { type ComponentChildren, h } from "preact";
import { renderToString } from "preact-render-to-string";
import type { Config } from "../config.ts";
import type { BufferBudget } from "../service/buffer_budget.ts";
import type { SalesService } from "../service/types.ts";
import App from "../../routes/_app.tsx";
import IndexPage from "../../routes/index.tsx";
import NotFoundPage from "../../routes/_error.tsx";
import { DEFAULT_BUILD_DIR, readIslandsManifest } from "./build.ts";
import type { DevReload } from "./dev_reload.ts";
import { createGrpcWebHandler, isGrpcWebContentType, isRpcPath, RPC_METHODS } from "./grpc_web.ts";
import { createHostCheck, plainText } from "./host_check.ts";
import { installIslandMarkers } from "./islands.ts";
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
    & Partial<Pick<Config, "salesApiToken" | "allowedHosts">>;
  /** Bytes of request messages being received at once, shared with the gRPC port. @default {no limit} */
  budget?: BufferBudget;
  /** Folder of static assets. @default {static/ in the repository (embedded when compiled)} */
  staticDir?: URL;
  /** Folder of the island bundle and its manifest. @default {static/build/} */
  buildDir?: URL;
  /** `deno task dev` only: serves `/_dev/` and puts the reload script in every page. @default {off} */
  devReload?: DevReload;
}

const DEFAULT_STATIC_DIR = new URL("../../static/", import.meta.url);

/** Builds the handler for pages, static assets and gRPC-Web. */
export function createWebHandler(
  options: WebHandlerOptions,
): (request: Request, info?: Deno.ServeHandlerInfo) => Promise<Response> {
  const { service, config, devReload } = options;
  const staticDir = options.staticDir ?? DEFAULT_STATIC_DIR;
  const buildDir = options.buildDir ?? DEFAULT_BUILD_DIR;
  installIslandMarkers();
  const grpcWeb = createGrpcWebHandler({
    service,
    corsOrigins: config.corsOrigins,
    readMaxBytes: config.maxMessageBytes,
    apiToken: config.salesApiToken,
    budget: options.budget,
  });
  const checkHost = createHostCheck({ allowedHosts: config.allowedHosts });
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
      console.warn("[web] No island bundle in static/build/: run `deno task build`");
    }
    return manifest && `/static/build/${manifest.islands}`;
  }

  async function page(
    request: Request,
    status: number,
    title: string,
    body: ComponentChildren,
  ): Promise<Response> {
    const html = "<!DOCTYPE html>" + renderToString(
      h(App, {
        title,
        stylesUrl: "/static/styles.css",
        islandsUrl: await islandsUrl(),
        devReloadUrl: devReload?.scriptUrl(),
        children: body,
      }),
    );
    return new Response(request.method === "HEAD" ? null : html, {
      status,
      headers: {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-cache",
        "content-security-policy": contentSecurityPolicy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
      },
    });
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
      return await devReload.handle(request);
    }
    if (path === "/") {
      return await page(
        request,
        200,
        "Sales Aggregator: total sales per department",
        h(IndexPage, {
          grpcWebUrl: config.grpcWebUrl,
          maxUploadBytes: config.maxUploadBytes ?? null,
        }),
      );
    }
    if (path === "/favicon.svg") return await serveStaticFile(request, staticDir, "favicon.svg");
    if (path.startsWith("/static/build/")) {
      // Only the content-hashed bundles: anything else there (the manifest) is internal.
      const name = path.slice("/static/build/".length);
      if (/^islands-[0-9a-f]+\.js$/.test(name)) {
        return await serveStaticFile(request, buildDir, name, { immutable: true });
      }
      return await page(request, 404, "Page not found", h(NotFoundPage, { path }));
    }
    if (path.startsWith("/static/")) {
      return await serveStaticFile(request, staticDir, path.slice("/static/".length));
    }
    return await page(request, 404, "Page not found", h(NotFoundPage, { path }));
  }

  return async function handleWeb(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Response> {
    try {
      return await route(request, info);
    } catch (error) {
      console.error("[web] Unexpected error:", error);
      return new Response("Internal server error\n", {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
  };
}
