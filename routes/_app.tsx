import type { PageProps } from "../server/web/fs_routes.ts";
import type { State } from "../server/web/web_app.ts";

/**
 * The HTML shell around every page (Fresh's `routes/_app.tsx`). The page's handler sets the title
 * in `state.title`; the server adds the island bundle's script tags, as Fresh does.
 */
export default function App({ Component, state }: PageProps<unknown, State>) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>{state.title ?? "Sales Aggregator"}</title>
        <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href="/static/styles.css" />
      </head>
      <body>
        <a class="skip-link" href="#main">Skip to content</a>
        <Component />
      </body>
    </html>
  );
}
