/**
 * A worker of `parallel_aggregate.ts`: aggregates byte ranges of a file with its own
 * {@linkcode SalesAggregator}, as if the file started at its first range (see `midFile`).
 *
 * Once loaded, it says `{ type: "ready" }`. Requests: `{ type: "start", path, start, end,
 * options }` begins a part (dropping any unfinished one: workers are reused from file to file);
 * `{ type: "range", start, end }` continues it with the next bytes; `{ type: "finish" }` ends it.
 * Each range is answered with `{ type: "range", atRecordBoundary }`, `finish` with `{ type:
 * "result", part }` (a {@linkcode PartResult}, its buffers transferred), and any failure with
 * `{ type: "error", message, code }`.
 *
 * @module
 */

import { readFileRange } from "./_read_file.ts";
import { SalesAggregator, type SalesAggregatorOptions } from "./sales_aggregator.ts";
import type { PartResult } from "./parallel_aggregate.ts";

/** This worker's side of its channel to the thread that started it. */
const port = self as unknown as {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent) => void) | null;
};

interface Request {
  type: "start" | "range" | "finish";
  path?: string;
  start?: number;
  end?: number;
  options?: SalesAggregatorOptions;
}

let aggregator: SalesAggregator | undefined;
let file: Deno.FsFile | undefined;

/** Requests are handled one after the other, so that replies come in the order asked. */
let queue = Promise.resolve();
port.onmessage = (event: MessageEvent<Request>) => {
  queue = queue.then(() => handle(event.data));
};
// The thread that started this one splits the file only now: how long loading took does not count.
// (Only in a worker: `deno test --doc` imports this module on a main thread too.)
if (typeof port.postMessage === "function") port.postMessage({ type: "ready" });

async function handle(request: Request): Promise<void> {
  try {
    if (request.type === "start" || request.type === "range") {
      if (request.type === "start") {
        // Forget the last part's file before opening this one: if the open fails (a dropped part
        // whose file is gone by now), the next part must not close that file a second time.
        file?.close();
        file = undefined;
        aggregator = undefined;
        file = await Deno.open(request.path!, { read: true });
        aggregator = new SalesAggregator({ ...request.options, midFile: true });
      }
      const target = aggregator!;
      await readFileRange(file!, request.start!, request.end!, (chunk) => target.push(chunk));
      port.postMessage({ type: "range", atRecordBoundary: target.atRecordBoundary });
    } else {
      const target = aggregator!;
      file?.close();
      file = undefined;
      aggregator = undefined;
      const result = target.finish();
      const part: PartResult = {
        rows: result.rows,
        badRows: result.badRows,
        bytes: result.bytes,
        lineFeeds: target.lineFeeds,
        badRowSamples: result.badRowSamples,
        totals: result.departmentTotals.pack(),
      };
      const { names, ends, low } = part.totals;
      port.postMessage({ type: "result", part }, [names.buffer, ends.buffer, low.buffer]);
    }
  } catch (error) {
    // Structured cloning keeps an error's message but not its code.
    const { message, code } = error as { message?: string; code?: number };
    port.postMessage({ type: "error", message: String(message ?? error), code });
  }
}
