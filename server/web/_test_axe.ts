/**
 * Accessibility checks in the browser tests: {@linkcode axeViolations} runs axe-core on the page
 * Playwright shows and returns what it found, one line per violated rule and element.
 *
 * @module
 */

import axe from "axe-core";
import type { Page } from "playwright-core";

/** What `axe.run` answers, as far as the tests read it. */
interface AxeResults {
  violations: { id: string; impact?: string; help: string; nodes: { target: unknown[] }[] }[];
}

/**
 * Every axe-core violation on `page` (WCAG 2.1 A and AA, and best practices), as
 * `rule (impact): help at selector` lines; empty when there are none. Evaluated through the
 * DevTools protocol, so the page's Content-Security-Policy does not stop it.
 */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!await page.evaluate(() => "axe" in globalThis)) await page.evaluate(axe.source);
  const results = await page.evaluate(() =>
    (globalThis as unknown as { axe: { run(): Promise<unknown> } }).axe.run()
  ) as AxeResults;
  return results.violations.flatMap((violation) =>
    violation.nodes.map((node) =>
      `${violation.id} (${violation.impact}): ${violation.help} at ${node.target.join(" ")}`
    )
  );
}
