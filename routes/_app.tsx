import type { ComponentChildren } from "preact";

/** Props of {@linkcode App}: what every page's shell needs. */
export interface AppProps {
  /** The page title, shown in the tab. */
  title: string;
  /** URL of the stylesheet (versioned by content hash). */
  stylesUrl: string;
  /** URL of the island bundle, or undefined when it has not been built. */
  islandsUrl: string | undefined;
  /** `deno task dev` only: the script that reloads the page when the code changes. */
  devReloadUrl?: string;
  children: ComponentChildren;
}

/** The HTML shell around every page (Fresh's `routes/_app.tsx`). */
export default function App(
  { title, stylesUrl, islandsUrl, devReloadUrl, children }: AppProps,
) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>{title}</title>
        <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href={stylesUrl} />
        {islandsUrl && <link rel="modulepreload" href={islandsUrl} />}
      </head>
      <body>
        <a class="skip-link" href="#main">Skip to content</a>
        {children}
        {islandsUrl && <script type="module" src={islandsUrl} />}
        {devReloadUrl && <script type="module" src={devReloadUrl} />}
      </body>
    </html>
  );
}
