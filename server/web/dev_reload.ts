/**
 * `deno task dev` only: builds the island bundle when the server (re)starts and tells open pages
 * to reload, the way Fresh's dev mode does. Nothing here is loaded under `deno task start`:
 * `server/main.ts` imports this module only with `--dev`.
 *
 * How a change reaches the browser: `deno run --watch` restarts the server whenever a file under
 * `server/`, `routes/`, `islands/` or `components/`, or any module they import, changes (islands
 * are imported by the routes, so an island edit restarts too, and the server renders the new
 * island). On every start, {@linkcode createDevReload} rebuilds the bundle; pages wait for that
 * build, so none is served with a stale bundle. Each page loads `/_dev/reload.js`, which listens
 * to `/_dev/reload` (Server-Sent Events). The stream sends the server's revision: this process's
 * id and the bundle's content-hashed name. When the server restarts, the `EventSource`
 * reconnects, receives a new revision and reloads the page.
 *
 * @example
 * ```ts
 * import { createDevReload } from "./dev_reload.ts";
 *
 * const devReload = createDevReload({ build: () => Promise.resolve({ islands: "islands-ab.js" }) });
 * await devReload.ready;
 * const request = new Request("http://localhost/_dev/reload.js");
 * const response = await devReload.handle(request, "/_dev/reload.js");
 * if (!response.headers.get("content-type")?.startsWith("text/javascript")) throw new Error();
 * devReload.close();
 * ```
 *
 * @module
 */

import { buildIslands, type IslandsManifest, readIslandsManifest } from "./build.ts";
import { consoleLogger } from "../logger.ts";

/** Path prefix of everything dev mode serves; {@linkcode DevReload.handle} answers below it. */
export const DEV_PATH_PREFIX = "/_dev/";
/** The Server-Sent Events stream of revisions. */
export const DEV_RELOAD_EVENTS_PATH = "/_dev/reload";
/** The script every page loads in dev mode; its `revision` query parameter is the page's. */
export const DEV_RELOAD_SCRIPT_PATH = "/_dev/reload.js";
/** How soon a page's `EventSource` reconnects after the server went away (a restart). */
const RECONNECT_MS = 250;

/** Options of {@linkcode createDevReload}. */
export interface DevReloadOptions {
  /**
   * Builds the island bundle and answers its manifest.
   * @default {buildIslands() into static/build/, then its manifest}
   */
  build?: () => Promise<IslandsManifest>;
  /** Where build failures go. @default {consoleLogger.error} */
  logError?: (message: string, error: unknown) => void;
}

/** Dev mode's state, shared by the web handler and the page shell. */
export interface DevReload {
  /** Settles when the build started with this process is done (it never rejects). */
  readonly ready: Promise<void>;
  /** The bundle to link, or undefined while none is built (or the build failed). */
  islandsName(): string | undefined;
  /** This process and its bundle: pages rendered with another revision reload. */
  revision(): string;
  /** The script URL to put in each page, carrying the page's revision. */
  scriptUrl(): string;
  /** Answers a request below {@linkcode DEV_PATH_PREFIX}; `path` is the one the server routes on. */
  handle(request: Request, path: string): Promise<Response>;
  /** Ends every open event stream, so that a graceful shutdown does not wait for them. */
  close(): void;
}

async function defaultBuild(): Promise<IslandsManifest> {
  await buildIslands();
  const manifest = await readIslandsManifest();
  if (manifest === undefined) throw new Error("The island build wrote no manifest");
  return manifest;
}

/**
 * The page side: reloads when the server's revision differs from the one the page was rendered
 * with. The `EventSource` reconnects by itself after `retry` ms when the server restarts; a stream
 * the browser gave up on (the server answered with an error) is opened again.
 */
const RELOAD_SCRIPT = `const revision = new URL(import.meta.url).searchParams.get("revision");
function listen() {
  const events = new EventSource(${JSON.stringify(DEV_RELOAD_EVENTS_PATH)});
  events.onmessage = (event) => {
    if (event.data !== revision) {
      events.close();
      location.reload();
    }
  };
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) setTimeout(listen, ${RECONNECT_MS * 4});
  };
}
listen();
`;

/** Starts dev mode: builds the island bundle now and serves the reload channel. */
export function createDevReload(options: DevReloadOptions = {}): DevReload {
  const build = options.build ?? defaultBuild;
  const logError = options.logError ?? ((message, error) => consoleLogger.error(message, error));
  const instance = crypto.randomUUID().slice(0, 8);
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const encoder = new TextEncoder();
  let manifest: IslandsManifest | undefined;
  let failed = false;

  const ready = build().then(
    (built) => {
      manifest = built;
    },
    (error) => {
      failed = true;
      logError("[dev] Building the island bundle failed; fix the error and save again:", error);
    },
  );

  function revision(): string {
    return `${instance}-${manifest?.islands ?? (failed ? "failed" : "building")}`;
  }

  function events(): Response {
    let controller: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        streams.add(c);
        c.enqueue(encoder.encode(`retry: ${RECONNECT_MS}\n\n`));
        // The revision only once the build is done: a page must not reload onto a half build.
        ready.then(() => {
          if (streams.has(c)) c.enqueue(encoder.encode(`data: ${revision()}\n\n`));
        });
      },
      cancel() {
        streams.delete(controller);
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  }

  return {
    ready,
    islandsName: () => manifest?.islands,
    revision,
    scriptUrl: () => `${DEV_RELOAD_SCRIPT_PATH}?revision=${encodeURIComponent(revision())}`,
    handle(request: Request, path: string): Promise<Response> {
      if (path === DEV_RELOAD_EVENTS_PATH) return Promise.resolve(events());
      if (path === DEV_RELOAD_SCRIPT_PATH) {
        return Promise.resolve(
          new Response(request.method === "HEAD" ? null : RELOAD_SCRIPT, {
            headers: {
              "content-type": "text/javascript; charset=utf-8",
              "cache-control": "no-store",
              "x-content-type-options": "nosniff",
            },
          }),
        );
      }
      return Promise.resolve(
        new Response(`Not found: ${path}\n`, {
          status: 404,
          headers: { "content-type": "text/plain; charset=utf-8" },
        }),
      );
    },
    close() {
      for (const controller of streams) {
        try {
          controller.close();
        } catch {
          // Already closed by the client going away.
        }
      }
      streams.clear();
    },
  };
}
