/**
 * `deno task bench [name...] [--quick]`: runs the benchmarks, prints a table per benchmark with
 * PASS/FAIL against its targets, and writes all figures to `.cache/bench/last-results.json`.
 *
 * A name argument keeps only the benchmarks whose name contains it (`deno task bench aggregate`).
 * `--quick` uses small inputs to check the harness itself; its figures mean little.
 * Exits 1 when a check fails.
 *
 * To add a benchmark: write `bench/<name>_bench.ts` exporting an async {@linkcode BenchFn}, and add
 * one line to {@linkcode BENCHES}.
 *
 * @module
 */

import { abuseBench } from "./abuse_bench.ts";
import { aggregateBench } from "./aggregate_bench.ts";
import { browserUploadBench } from "./browser_upload_bench.ts";
import { hostileBench } from "./hostile_bench.ts";
import { loadBench } from "./load_bench.ts";
import { scaleBench } from "./scale_bench.ts";
import { uploadBench } from "./upload_bench.ts";
import { type BenchFn, type BenchResult, formatResult } from "./_report.ts";

/** Every benchmark, in the order they run. */
export const BENCHES: ReadonlyArray<{ name: string; run: BenchFn }> = [
  { name: "aggregate", run: aggregateBench },
  { name: "browser-upload", run: browserUploadBench },
  { name: "grpc-upload", run: uploadBench },
  { name: "concurrent-load", run: loadBench },
  { name: "hostile", run: hostileBench },
  { name: "abuse", run: abuseBench },
  { name: "scale", run: scaleBench },
];

const RESULTS_FILE = new URL("../.cache/bench/last-results.json", import.meta.url);

const USAGE = `Usage: deno task bench [name...] [--quick]
  name     run only benchmarks whose name contains it (${BENCHES.map((b) => b.name).join(", ")})
  --quick  small inputs, to check the harness; figures mean little`;

async function main(args: string[]): Promise<number> {
  const quick = args.includes("--quick");
  if (args.includes("-h") || args.includes("--help")) {
    console.log(USAGE);
    return 0;
  }
  const unknownFlag = args.find((a) => a.startsWith("-") && a !== "--quick");
  if (unknownFlag) {
    console.error(`Unknown option ${unknownFlag}\n${USAGE}`);
    return 2;
  }
  const filters = args.filter((a) => !a.startsWith("-"));
  const selected = BENCHES.filter((b) =>
    filters.length === 0 || filters.some((f) => b.name.includes(f))
  );
  if (selected.length === 0) {
    console.error(`No benchmark matches ${filters.join(", ")}\n${USAGE}`);
    return 2;
  }

  const machine = machineInfo();
  console.log(
    `deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${machine.cpu}, ${machine.cores} cores, ` +
      `load average ${machine.loadAverage.map((x) => x.toFixed(2)).join(" ")}` +
      (quick ? ", QUICK mode" : ""),
  );
  const log = (line: string) => console.error(line);
  const results: BenchResult[] = [];
  for (const bench of selected) {
    const result = await bench.run({ quick, log });
    results.push(result);
    console.log(`\n${formatResult(result)}`);
  }

  await Deno.mkdir(new URL(".", RESULTS_FILE), { recursive: true });
  await Deno.writeTextFile(
    RESULTS_FILE,
    JSON.stringify({ date: new Date().toISOString(), quick, machine, results }, null, 2) + "\n",
  );
  const failed = results.flatMap((r) => r.checks.filter((c) => !c.pass));
  console.log(
    `\n${failed.length === 0 ? "All checks passed" : `${failed.length} check(s) FAILED`}; ` +
      `figures in ${decodeURIComponent(RESULTS_FILE.pathname)}`,
  );
  return failed.length === 0 ? 0 : 1;
}

function machineInfo() {
  let cpu = "unknown CPU";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ?? cpu;
  } catch {
    // Not Linux: the CPU name is only informative.
  }
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    loadAverage: Deno.loadavg(),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version,
  };
}

if (import.meta.main) Deno.exit(await main(Deno.args));
