/** Where the browser tests and benchmarks find Chromium (Debian's `chromium` package by default). */
export const CHROMIUM_PATH = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/**
 * Chromium flags for a quiet, isolated, headless run on our machines (playwright adds a fresh
 * profile): without the networking flags it keeps trying hosts this machine cannot reach.
 */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
