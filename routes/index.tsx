import SiteHeader from "../components/SiteHeader.tsx";
import RecentResults from "../islands/RecentResults.tsx";
import UploadIsland from "../islands/UploadIsland.tsx";
import { page, type PageProps, type RouteHandlers } from "../server/web/fs_routes.ts";
import type { State } from "../server/web/web_app.ts";

/** What {@linkcode IndexPage} shows, from the server's configuration. */
export interface IndexPageData {
  /** The gRPC-Web endpoint the island calls (`GRPC_WEB_URL`); empty means this origin. */
  grpcWebUrl: string;
  /** The largest upload accepted (`MAX_UPLOAD_BYTES`), or null when unlimited. */
  maxUploadBytes: number | null;
}

/** Reads the island's settings from the server's state. */
export const handler: RouteHandlers<IndexPageData, State> = {
  GET(ctx) {
    ctx.state.title = "Sales Aggregator: total sales per department";
    const { grpcWebUrl, maxUploadBytes } = ctx.state;
    return page({ grpcWebUrl, maxUploadBytes });
  },
};

const SAMPLE = `Department Name,Date,Number of Sales
Electronics,2024-01-15,120
Garden,2024-01-15,75
Electronics,2024-01-16,98
"Toys, Games & Books",2024-01-16,40`;

/** `/`: what the tool does, the upload island, and the file format. Reads fine without script. */
export default function IndexPage({ data }: PageProps<IndexPageData, State>) {
  const { grpcWebUrl, maxUploadBytes } = data;
  return (
    <>
      <SiteHeader />
      <main id="main" class="page">
        <div class="intro">
          <h1>Total sales per department, from one CSV</h1>
          <p class="lead">
            Upload a CSV of departmental sales, or several at once, to get each department's total
            number of sales as a table, a chart and a CSV file, on a page of its own you can come
            back to. Files of any size work: they are sent in chunks, and a chunk lost on the way is
            sent again.
          </p>
        </div>
        <noscript>
          <p class="notice">
            Uploading from this page needs JavaScript. Without it, use the command-line client:{" "}
            <code>deno task upload sales.csv --out result.csv</code>.
          </p>
        </noscript>
        <UploadIsland grpcWebUrl={grpcWebUrl} maxUploadBytes={maxUploadBytes} />
        <RecentResults />
        <section class="card format" aria-labelledby="format-heading">
          <h2 id="format-heading">What the file looks like</h2>
          <pre><code>{SAMPLE}</code></pre>
          <ul>
            <li>
              UTF-8 text, comma-separated, with the header{" "}
              <code>Department Name,Date,Number of Sales</code>. Quoted fields may hold commas,
              quotes (doubled) and line breaks.
            </li>
            <li>
              Dates are real calendar dates written{" "}
              <code>YYYY-MM-DD</code>; sales are whole numbers without signs or separators.
            </li>
            <li>
              Rows that do not follow these rules are{" "}
              <em>bad rows</em>: they are counted, up to 20 are listed with the reason (with several
              files, each file's first ones), and they are left out of the totals.
            </li>
            <li>
              The result has one line per department,{" "}
              <code>Department Name,Total Number of Sales</code>, sorted by name. Totals are exact,
              however large.
            </li>
          </ul>
        </section>
      </main>
      <footer class="site-footer">
        <div class="page">
          Also available as gRPC (<code>sales.v1.SalesService</code>) for programs, and as{" "}
          <code>deno task upload</code> on the command line.
        </div>
      </footer>
    </>
  );
}
