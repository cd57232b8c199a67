/**
 * Run in a fresh process by `sales_aggregator_test.ts`: pushes one 100 MiB record (no LF) in
 * 64 KiB chunks through one reused buffer and prints how much RSS grew, as JSON. A fresh process
 * keeps memory freed by other tests from hiding the growth.
 *
 * @module
 */
import { SalesAggregator } from "./sales_aggregator.ts";

const encoder = new TextEncoder();
const chunk = new Uint8Array(65_536);
// Quotes, doubled quotes, commas and lone CRs, but no LF: the parser keeps changing state.
const pattern = encoder.encode(`a,"b""c",d"e,\r`);
for (let i = 0; i < chunk.length; i++) chunk[i] = pattern[i % pattern.length];

const aggregator = new SalesAggregator();
aggregator.push(encoder.encode("Department Name,Date,Number of Sales\nToys,2024-01-01,2\n"));
// Warm up: one over-long record first, so code and steady-state buffers exist before measuring.
for (let i = 0; i < 40; i++) aggregator.push(chunk);
aggregator.push(encoder.encode("\n"));
const before = Deno.memoryUsage().rss;
for (let i = 0; i < 1600; i++) aggregator.push(chunk); // 100 MiB without an LF
const growth = Deno.memoryUsage().rss - before;
aggregator.push(encoder.encode("\nToys,2024-01-01,3\n"));
const result = aggregator.finish();
console.log(JSON.stringify({
  growth,
  totals: [...result.totals].map(([name, total]) => [name, String(total)]),
  rows: result.rows,
  badRows: result.badRows,
  lines: result.badRowSamples.map((s) => s.line),
}));
