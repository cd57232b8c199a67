import assert from "node:assert/strict";
import {
  MAX_RECENT_RESULTS,
  RECENT_RESULTS_KEY,
  type RecentResult,
  recentResultsStore,
} from "./recent_results.ts";

/** A `Storage` in memory; `refuse` makes every call throw, as private modes may. */
function memoryStorage(refuse = false): Storage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  const check = () => {
    if (refuse) throw new DOMException("The quota has been exceeded", "QuotaExceededError");
  };
  return {
    items,
    getItem: (key: string) => (check(), items.get(key) ?? null),
    setItem: (key: string, value: string) => (check(), void items.set(key, value)),
    removeItem: (key: string) => (check(), void items.delete(key)),
  } as unknown as Storage & { items: Map<string, string> };
}

function entry(n: number, overrides: Partial<RecentResult> = {}): RecentResult {
  const resultId = n.toString(16).padStart(32, "0");
  return {
    resultId,
    pagePath: `/r/${resultId}`,
    name: `sales-${n}.csv`,
    savedAt: new Date(Date.UTC(2026, 11, 2, 10, n)).toISOString(),
    files: 1,
    rows: n * 10,
    badRows: 0,
    departments: n,
    ...overrides,
  };
}

Deno.test("recentResultsStore keeps results newest first across stores, once each", () => {
  const storage = memoryStorage();
  const recent = recentResultsStore(storage);
  assert.deepEqual(recent.list(), []);
  recent.add(entry(1));
  recent.add(entry(2));
  // A second store on the same storage (a reload) sees the same list.
  assert.deepEqual(recentResultsStore(storage).list().map((r) => r.name), [
    "sales-2.csv",
    "sales-1.csv",
  ]);
  // Adding one again moves it first instead of listing it twice.
  recent.add(entry(1, { name: "again.csv" }));
  assert.deepEqual(recent.list().map((r) => r.name), ["again.csv", "sales-2.csv"]);
});

Deno.test("recentResultsStore forget removes one entry and clears the key when empty", () => {
  const storage = memoryStorage();
  const recent = recentResultsStore(storage);
  recent.add(entry(1));
  recent.add(entry(2));
  assert.deepEqual(recent.forget(entry(2).resultId).map((r) => r.resultId), [entry(1).resultId]);
  assert.deepEqual(recent.forget(entry(1).resultId), []);
  assert.equal(storage.items.has(RECENT_RESULTS_KEY), false);
});

Deno.test("recentResultsStore keeps only the newest results", () => {
  const recent = recentResultsStore(memoryStorage());
  for (let n = 1; n <= MAX_RECENT_RESULTS + 5; n++) recent.add(entry(n));
  const kept = recent.list();
  assert.equal(kept.length, MAX_RECENT_RESULTS);
  assert.equal(kept[0].resultId, entry(MAX_RECENT_RESULTS + 5).resultId);
  assert.equal(kept.at(-1)!.resultId, entry(6).resultId);
});

Deno.test("recentResultsStore ignores malformed storage and foreign entries", async (t) => {
  const cases: { name: string; stored: string; kept: number }[] = [
    { name: "not JSON", stored: "{oops", kept: 0 },
    { name: "not a list", stored: '{"a":1}', kept: 0 },
    { name: "a bad id", stored: JSON.stringify([entry(1, { resultId: "../etc" })]), kept: 0 },
    {
      name: "a link elsewhere",
      stored: JSON.stringify([entry(1, { pagePath: "https://evil.example/" })]),
      kept: 0,
    },
    { name: "a negative count", stored: JSON.stringify([entry(1, { rows: -1 })]), kept: 0 },
    { name: "one good among bad", stored: JSON.stringify([entry(1), 7, null]), kept: 1 },
  ];
  for (const { name, stored, kept } of cases) {
    await t.step(name, () => {
      const storage = memoryStorage();
      storage.setItem(RECENT_RESULTS_KEY, stored);
      assert.equal(recentResultsStore(storage).list().length, kept);
    });
  }
});

Deno.test("recentResultsStore keeps the list in memory when storage refuses", () => {
  const recent = recentResultsStore(memoryStorage(true));
  recent.add(entry(1));
  assert.deepEqual(recent.list().map((r) => r.resultId), [entry(1).resultId]);
  assert.deepEqual(recent.forget(entry(1).resultId), []);
});
