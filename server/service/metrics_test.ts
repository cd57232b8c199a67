import assert from "node:assert/strict";
import { parsePrometheusText, sampleValue } from "../_test_prometheus_text.ts";
import { SalesMetrics } from "./metrics.ts";

Deno.test("SalesMetrics starts every series at zero for both transports", async () => {
  const metrics = new SalesMetrics({ replicaId: "r-1", processMetrics: false });
  const samples = parsePrometheusText((await metrics.render()).body);
  for (const transport of ["grpc", "grpc-web"]) {
    for (
      const name of [
        "sales_uploads_started_total",
        "sales_uploads_finished_total",
        "sales_upload_received_bytes_total",
        "sales_upload_rows_total",
        "sales_upload_bad_rows_total",
        "sales_uploads_in_progress",
      ]
    ) {
      assert.equal(sampleValue(samples, name, { transport }), 0, `${name}{${transport}}`);
    }
  }
  assert.equal(sampleValue(samples, "sales_results_stored_total"), 0);
  assert.equal(sampleValue(samples, "sales_storage_errors_total", { operation: "write" }), 0);
  assert.equal(sampleValue(samples, "sales_replica_info", { replica: "r-1" }), 1);
});

Deno.test("SalesMetrics keeps each server's counters in its own registry", async () => {
  const first = new SalesMetrics({ processMetrics: false });
  const second = new SalesMetrics({ processMetrics: false });
  first.resultsStored.inc();
  first.storageError("read");
  const one = parsePrometheusText((await first.render()).body);
  const other = parsePrometheusText((await second.render()).body);
  assert.equal(sampleValue(one, "sales_results_stored_total"), 1);
  assert.equal(sampleValue(one, "sales_storage_errors_total", { operation: "read" }), 1);
  assert.equal(sampleValue(other, "sales_results_stored_total"), 0);
  assert.equal(sampleValue(other, "sales_storage_errors_total", { operation: "read" }), 0);
});

Deno.test("SalesMetrics appends the process metrics Deno can give, once per name", async () => {
  const metrics = new SalesMetrics();
  const { body, contentType } = await metrics.render();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  const samples = parsePrometheusText(body);
  for (
    const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_open_fds",
      "process_start_time_seconds",
      "nodejs_heap_size_used_bytes",
      "nodejs_eventloop_lag_seconds",
    ]
  ) {
    const value = sampleValue(samples, name);
    assert.ok(value !== undefined && Number.isFinite(value), `${name} = ${value}`);
  }
  assert.ok(sampleValue(samples, "process_resident_memory_bytes")! > 1024 * 1024);
  // Two servers' texts must not declare a metric twice, or Prometheus rejects the scrape.
  const declared = body.split("\n").filter((line) => line.startsWith("# TYPE "));
  assert.equal(new Set(declared).size, declared.length);
});
