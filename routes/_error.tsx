import { HttpError, page, type PageProps, type RouteContext } from "../server/web/fs_routes.ts";
import type { State } from "../server/web/web_app.ts";

function isNotFound(error: unknown): boolean {
  return error instanceof HttpError && error.status === 404;
}

/** Names the page in the tab. */
export function handler(ctx: RouteContext<State>) {
  ctx.state.title = !isNotFound(ctx.error)
    ? "Something went wrong"
    : ctx.url.pathname.startsWith("/r/")
    ? "Result not found"
    : "Page not found";
  return page(undefined);
}

/**
 * The page for errors (Fresh 2's `routes/_error.tsx`): a URL that is no page, asset or RPC gets
 * an {@linkcode HttpError} 404; anything else is a server error, told in general terms only.
 */
export default function ErrorPage({ error, url }: PageProps<undefined, State>) {
  if (isNotFound(error) && url.pathname.startsWith("/r/")) {
    return (
      <main id="main" class="page narrow">
        <h1>Result not found</h1>
        <p data-testid="result-missing">
          There is no result at{" "}
          <code>{url.pathname}</code>. Results are deleted after some time on the server, and this
          one may have been, or the address is not complete. <a href="/">Upload the file again</a>
          {" "}
          to get a new result.
        </p>
      </main>
    );
  }
  if (isNotFound(error)) {
    return (
      <main id="main" class="page narrow">
        <h1>Page not found</h1>
        <p>
          There is nothing at <code>{url.pathname}</code>. <a href="/">Go to the upload page</a>.
        </p>
      </main>
    );
  }
  return (
    <main id="main" class="page narrow">
      <h1>Something went wrong</h1>
      <p>
        The server could not answer this request. Try again in a moment, or{" "}
        <a href="/">go to the upload page</a>.
      </p>
    </main>
  );
}
