/**
 * This browser's recent results, kept in `localStorage` so the upload page can list them with a
 * link back. Only results uploaded from this browser are ever listed: the list is written here,
 * after an upload, and never read from the server. Storage may be missing or refuse writes
 * (private modes): the list then lasts until the page is left.
 *
 * @example
 * ```ts
 * import { recentResultsStore } from "./recent_results.ts";
 *
 * const items = new Map<string, string>();
 * const storage = {
 *   getItem: (key: string) => items.get(key) ?? null,
 *   setItem: (key: string, value: string) => void items.set(key, value),
 *   removeItem: (key: string) => void items.delete(key),
 * } as Storage;
 * const recent = recentResultsStore(storage);
 * recent.add({
 *   resultId: "0123456789abcdef0123456789abcdef",
 *   pagePath: "/r/0123456789abcdef0123456789abcdef",
 *   name: "sales.csv",
 *   savedAt: "2026-12-02T10:00:00.000Z",
 *   files: 1,
 *   rows: 3,
 *   badRows: 0,
 *   departments: 2,
 * });
 * if (recent.list().length !== 1) throw new Error("not kept");
 * recent.forget("0123456789abcdef0123456789abcdef");
 * if (recent.list().length !== 0) throw new Error("not forgotten");
 * ```
 *
 * @module
 */

/** One result this browser uploaded. */
export interface RecentResult {
  resultId: string;
  /** The result page's path (`/r/<id>`, signed when the server signs addresses). */
  pagePath: string;
  /** The file's name, or the first file's name and how many more. */
  name: string;
  /** When the upload finished, RFC 3339. */
  savedAt: string;
  /** How many files made the result. */
  files: number;
  rows: number;
  badRows: number;
  departments: number;
}

/** The list as the page keeps it. */
export interface RecentResultsStore {
  /** The results, newest first. */
  list(): RecentResult[];
  /** Puts `result` first (once: an older entry with its id goes); keeps the newest few. */
  add(result: RecentResult): RecentResult[];
  /** Removes the result with this id; returns what is left. */
  forget(resultId: string): RecentResult[];
}

/** The `localStorage` key. */
export const RECENT_RESULTS_KEY = "sales-aggregator.recent-results";
/**
 * The event dispatched on `globalThis` when this page changes the list, so every island showing
 * it updates (`storage` events tell only other tabs).
 */
export const RECENT_RESULTS_EVENT = "sales-aggregator:recent-results";
/** How many results the list keeps: older ones drop off. */
export const MAX_RECENT_RESULTS = 20;

const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;

/** Whether `value` is a well-formed entry: storage is shared with anything on this origin. */
function isRecentResult(value: unknown): value is RecentResult {
  if (typeof value !== "object" || value === null) return false;
  const entry = value as Record<string, unknown>;
  return typeof entry.resultId === "string" && /^[0-9a-f]{32}$/.test(entry.resultId) &&
    typeof entry.pagePath === "string" && entry.pagePath.startsWith(`/r/${entry.resultId}`) &&
    typeof entry.name === "string" && typeof entry.savedAt === "string" &&
    !Number.isNaN(Date.parse(entry.savedAt)) &&
    isCount(entry.files) && isCount(entry.rows) && isCount(entry.badRows) &&
    isCount(entry.departments);
}

/** The recent results in `storage` (default: `localStorage`). */
export function recentResultsStore(storage?: Storage): RecentResultsStore {
  let memory: RecentResult[] = [];
  const local = (): Storage | undefined => {
    try {
      return storage ?? globalThis.localStorage;
    } catch {
      return undefined;
    }
  };
  const read = (): RecentResult[] => {
    try {
      const text = local()?.getItem(RECENT_RESULTS_KEY);
      if (text === null || text === undefined) return memory;
      const parsed: unknown = JSON.parse(text);
      return Array.isArray(parsed) ? parsed.filter(isRecentResult) : [];
    } catch {
      return memory;
    }
  };
  const write = (results: RecentResult[]): RecentResult[] => {
    memory = results;
    try {
      const store = local();
      if (results.length === 0) store?.removeItem(RECENT_RESULTS_KEY);
      else store?.setItem(RECENT_RESULTS_KEY, JSON.stringify(results));
    } catch {
      // Kept in memory only.
    }
    if (typeof globalThis.dispatchEvent === "function") {
      globalThis.dispatchEvent(new Event(RECENT_RESULTS_EVENT));
    }
    return results;
  };
  return {
    list: read,
    add: (result) =>
      write(
        [result, ...read().filter((entry) => entry.resultId !== result.resultId)]
          .slice(0, MAX_RECENT_RESULTS),
      ),
    forget: (resultId) => write(read().filter((entry) => entry.resultId !== resultId)),
  };
}
