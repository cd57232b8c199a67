import { useEffect, useRef, useState } from "preact/hooks";
import { formatPlural } from "../browser/format.ts";
import {
  RECENT_RESULTS_EVENT,
  RECENT_RESULTS_KEY,
  type RecentResult,
  type RecentResultsStore,
  recentResultsStore,
} from "../browser/recent_results.ts";

/** Props of {@linkcode RecentResults}: none, the list lives in this browser only. */
export type RecentResultsProps = Record<never, never>;

const when = (iso: string) =>
  new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })
    .format(new Date(iso));

/**
 * This browser's recent results (`localStorage`), each with a link to its page and a button to
 * forget it. The server renders nothing here: it never knows the list, and it never lists anyone
 * else's uploads.
 */
export default function RecentResults(_props: RecentResultsProps) {
  const [results, setResults] = useState<RecentResult[]>([]);
  const store = useRef<RecentResultsStore | undefined>(undefined);
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    const recent = recentResultsStore();
    store.current = recent;
    const refresh = () => setResults(recent.list());
    const fromOtherTab = (event: StorageEvent) => {
      if (event.key === RECENT_RESULTS_KEY || event.key === null) refresh();
    };
    refresh();
    addEventListener(RECENT_RESULTS_EVENT, refresh);
    addEventListener("storage", fromOtherTab);
    return () => {
      removeEventListener(RECENT_RESULTS_EVENT, refresh);
      removeEventListener("storage", fromOtherTab);
    };
  }, []);

  function forget(result: RecentResult) {
    setResults(store.current?.forget(result.resultId) ?? []);
    // The button that had focus is gone: keep the person in the list. (The upload page has one
    // live region, the upload's; the shorter list speaks for itself.)
    heading.current?.focus();
  }

  return (
    <div>
      {results.length > 0 && (
        <section class="card recent" aria-labelledby="recent-heading" data-testid="recent">
          <h2 id="recent-heading" tabIndex={-1} ref={heading}>Your recent results</h2>
          <p class="muted">
            Kept in this browser only; other people's uploads are never listed.
          </p>
          <ul class="recent-list">
            {results.map((result) => {
              const name = result.name || "(unnamed file)";
              return (
                <li key={result.resultId} class="recent-item">
                  <div>
                    <a href={result.pagePath} class="file-name">{name}</a>
                    <span class="muted">
                      {" · "}
                      <time dateTime={result.savedAt}>{when(result.savedAt)}</time>
                    </span>
                    <div class="muted recent-counts">
                      {result.files > 1 ? `${formatPlural(result.files, "file")}, ` : ""}
                      {formatPlural(result.rows, "row")}, {formatPlural(result.badRows, "bad row")},
                      {" "}
                      {formatPlural(result.departments, "department")}
                    </div>
                  </div>
                  <button
                    type="button"
                    class="link"
                    aria-label={`Forget ${name}`}
                    onClick={() => forget(result)}
                  >
                    Forget
                  </button>
                </li>
              );
            })}
          </ul>
        </section>
      )}
    </div>
  );
}
