/**
 * Numbers for people: counts with grouping and their nouns in agreement, chart labels that tell
 * values apart, sizes and speeds in decimal units (as network speeds are quoted), durations in the
 * largest sensible unit. `locale` defaults to the browser's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes, formatCount, formatDuration, formatPlural } from "./format.ts";
 *
 * assert.equal(formatCount(1234567n, "en-US"), "1,234,567");
 * assert.equal(formatPlural(1, "department", undefined, "en-US"), "1 department");
 * assert.equal(formatBytes(268_435_456, "en-US"), "268.4 MB");
 * assert.equal(formatDuration(75, "en-US"), "1 min 15 s");
 * ```
 *
 * @module
 */

const BYTE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

/** A count with digit grouping: `1,234,567`. Works for bigint totals past 2^53. */
export function formatCount(value: number | bigint, locale?: string): string {
  return new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(value);
}

/** English plural categories: the page's words are English whatever the number format. */
const ENGLISH_PLURALS = new Intl.PluralRules("en");

/** A count with its noun in agreement: `1 department`, `0 departments`, `1,234 bad rows`. */
export function formatPlural(
  count: number | bigint,
  singular: string,
  plural = `${singular}s`,
  locale?: string,
): string {
  const noun = ENGLISH_PLURALS.select(Number(count)) === "one" ? singular : plural;
  return `${formatCount(count, locale)} ${noun}`;
}

/** The most significant digits a compact label gets before exact figures read better. */
const MAX_COMPACT_DIGITS = 5;

/**
 * Short labels for values shown side by side, such as chart bars: compact (`1.2B`, `340M`), with
 * as many significant digits as it takes for different values to get different labels
 * (`1.2346B` beside `1.2347B`), and exact figures with grouping (`1,234,567,891`) when even
 * {@linkcode MAX_COMPACT_DIGITS} are not enough. The whole part is never rounded (`123`, not `120`).
 */
export function formatDistinctLabels(
  values: readonly (number | bigint)[],
  locale?: string,
): string[] {
  const distinctValues = new Set(values.map(String)).size;
  for (let digits = 2; digits <= MAX_COMPACT_DIGITS; digits++) {
    const format = new Intl.NumberFormat(locale, {
      notation: "compact",
      maximumSignificantDigits: digits,
      maximumFractionDigits: 0,
      // Whichever keeps more digits: 123 stays 123 where two significant digits would say 120.
      roundingPriority: "morePrecision",
    });
    const labels = values.map((value) => format.format(value));
    if (new Set(labels).size === distinctValues) return labels;
  }
  return values.map((value) => formatCount(value, locale));
}

/** A size in decimal units with about three significant digits: `12.3 MB`. */
export function formatBytes(bytes: number, locale?: string): string {
  let unit = 0;
  let value = bytes;
  while (Math.abs(value) >= 1000 && unit < BYTE_UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  const digits = unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 1;
  const number = new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(value);
  return `${number} ${BYTE_UNITS[unit]}`;
}

/** A transfer speed: `85.2 MB/s`. */
export function formatSpeed(bytesPerSec: number, locale?: string): string {
  return `${formatBytes(bytesPerSec, locale)}/s`;
}

/** A duration: `0.42 s`, `12 s`, `1 min 15 s`, `2 h 5 min`. */
export function formatDuration(seconds: number, locale?: string): string {
  const number = (value: number, digits: number) =>
    new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(value);
  if (seconds < 10) return `${number(seconds, seconds < 1 ? 2 : 1)} s`;
  if (seconds < 60) return `${number(Math.round(seconds), 0)} s`;
  const whole = Math.round(seconds);
  if (whole < 3600) {
    const rest = whole % 60;
    return rest === 0 ? `${Math.floor(whole / 60)} min` : `${Math.floor(whole / 60)} min ${rest} s`;
  }
  const minutes = Math.round(whole / 60);
  const rest = minutes % 60;
  return rest === 0 ? `${Math.floor(minutes / 60)} h` : `${Math.floor(minutes / 60)} h ${rest} min`;
}
