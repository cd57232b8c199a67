/**
 * Hostile inputs at full size, from the corpus in `server/_test_hostile_cases.ts`: 200 MB
 * without a line break, an unterminated quote at the start of a 100 MB file, 1,000,000 distinct
 * departments (and one more, refused), and a gzip bomb of 100 GiB of zeros (~100 MB compressed)
 * against MAX_UPLOAD_BYTES=1 GiB. Each is streamed with `UploadCSVStream` to a fresh server child
 * process started with `deno task start`'s flags, so each peak RSS (`VmHWM`) is that case's own.
 *
 * Reports each outcome against the corpus's expectation, the time to the answer, and the server's
 * idle and peak RSS (for a success, the peak of the upload, read before the result is downloaded
 * with the unary `DownloadResult`, which holds the whole result). Checks: every outcome is the
 * expected one, the server's peak RSS stays at most {@linkcode TARGET_PEAK_RSS_MB} for the inputs
 * that must not be held (all but the departments, whose memory grows with their number up to
 * MAX_DEPARTMENTS by design), and at most {@linkcode TARGET_DEPARTMENTS_PEAK_RSS_MB} for 1,000,000
 * departments.
 *
 * Run alone with `deno run -A bench/hostile_bench.ts [--quick]`, or via `deno task bench hostile`.
 *
 * @module
 */

import { GrpcSalesClient } from "../server/grpc/sales_client.ts";
import {
  type ActualOutcome,
  HOSTILE_CASES,
  isErrorOutcome,
  outcomeMismatches,
  type Scale,
  type UploadCase,
} from "../server/_test_hostile_cases.ts";
import { startServerProcess } from "../server/_test_server_process.ts";
import { type BenchCheck, type BenchContext, type BenchResult, metricOf } from "./_report.ts";

/** Peak server RSS allowed while refusing or skipping an input it must not hold, in MB. */
export const TARGET_PEAK_RSS_MB = 200;
/** Peak server RSS allowed for 1,000,000 distinct departments through `UploadCSVStream`, in MB. */
export const TARGET_DEPARTMENTS_PEAK_RSS_MB = 250;
const DEPARTMENTS_CASE = "1,000,000 distinct departments";

/** The corpus cases run here, and whether their memory must stay flat. */
const RUNS: { name: string; flatMemory: boolean }[] = [
  { name: "200 MB without a line break", flatMemory: true },
  { name: "unterminated quote at the start of a 100 MB file", flatMemory: true },
  { name: DEPARTMENTS_CASE, flatMemory: false },
  { name: "MAX_DEPARTMENTS plus one department", flatMemory: false },
  { name: "gzip bomb", flatMemory: true },
];

const MB = 1e6;

interface HostileRun {
  name: string;
  inputBytes: number;
  seconds: number;
  outcome: string;
  problems: string[];
  serverIdleRssMb: number;
  serverPeakRssMb: number;
  flatMemory: boolean;
}

/** Runs the hostile-input benchmark; see the module doc. */
export async function hostileBench(ctx: BenchContext): Promise<BenchResult> {
  const scale: Scale = ctx.quick ? "test" : "full";
  const runs: HostileRun[] = [];
  for (const { name, flatMemory } of RUNS) {
    const testCase = HOSTILE_CASES.find((c): c is UploadCase =>
      c.kind === "upload" && c.name === name
    );
    if (testCase === undefined) throw new Error(`No corpus case named ${name}`);
    runs.push(await measure(testCase, scale, flatMemory, ctx));
  }

  const metrics = runs.flatMap((run) => [
    metricOf(`${run.name}: time to answer`, "s", [run.seconds], false, 2),
    metricOf(`${run.name}: server peak RSS`, "MB", [run.serverPeakRssMb], false),
  ]);
  metrics.push(
    metricOf("server RSS idle before each input (worst)", "MB", [
      Math.max(...runs.map((run) => run.serverIdleRssMb)),
    ], false),
  );
  const wrong = runs.filter((run) => run.problems.length > 0);
  const flat = runs.filter((run) => run.flatMemory);
  const worstFlat = Math.max(...flat.map((run) => run.serverPeakRssMb));
  const departments = runs.find((run) => run.name === DEPARTMENTS_CASE)!;
  const checks: BenchCheck[] = [
    {
      name: "every input ends with the corpus's expected outcome",
      pass: wrong.length === 0,
      detail: wrong.length === 0
        ? runs.map((run) => `${run.name}: ${run.outcome}`).join("; ")
        : wrong.map((run) => `${run.name}: ${run.problems.slice(0, 3).join(", ")}`).join("; "),
    },
    {
      name: `server peak RSS <= ${TARGET_PEAK_RSS_MB} MB for inputs it must not hold`,
      pass: worstFlat <= TARGET_PEAK_RSS_MB,
      detail: flat.map((run) => `${run.serverPeakRssMb.toFixed(1)} MB (${run.name})`).join(", "),
    },
    {
      name: `server peak RSS <= ${TARGET_DEPARTMENTS_PEAK_RSS_MB} MB for ${DEPARTMENTS_CASE}`,
      pass: departments.serverPeakRssMb <= TARGET_DEPARTMENTS_PEAK_RSS_MB,
      detail: `${departments.serverPeakRssMb.toFixed(1)} MB (${
        (departments.inputBytes / MB).toFixed(1)
      } MB input, ${departments.seconds.toFixed(2)} s)`,
    },
  ];

  return {
    name: "hostile",
    description:
      `hostile inputs at ${scale} scale from server/_test_hostile_cases.ts, each streamed ` +
      `to a fresh server child process on loopback; 1 run each`,
    metrics,
    checks,
    runs,
  };
}

/** Streams one case to a fresh server and reports what came back, how fast, and the memory. */
async function measure(
  testCase: UploadCase,
  scale: Scale,
  flatMemory: boolean,
  ctx: BenchContext,
): Promise<HostileRun> {
  const input = testCase.input(scale);
  const expected = testCase.expected(scale);
  await using server = await startServerProcess(testCase.env?.(scale) ?? {});
  const serverIdleRssMb = server.memory().rssBytes / MB;
  const client = new GrpcSalesClient(server.grpcAddress);
  try {
    const started = performance.now();
    let actual: ActualOutcome;
    try {
      const response = await client.uploadStream(input.chunks(), `${testCase.name}.csv`);
      const seconds = (performance.now() - started) / 1000;
      // The upload's own peak: the unary DownloadResult below holds the whole result in memory.
      const uploadPeakBytes = server.memory().peakBytes;
      const resultCsv = new TextDecoder().decode(await client.downloadResult(response.resultId));
      actual = { response, resultCsv };
      return report(seconds, actual, uploadPeakBytes);
    } catch (error) {
      const seconds = (performance.now() - started) / 1000;
      const { code, message } = error as { code?: number; message?: string };
      if (typeof code !== "number") throw error;
      actual = { error: { code, message: message ?? "" } };
      return report(seconds, actual);
    }
  } finally {
    client.close();
  }

  function report(seconds: number, actual: ActualOutcome, uploadPeakBytes?: number): HostileRun {
    const downloadPeakRssMb = server.memory().peakBytes / MB;
    const serverPeakRssMb = (uploadPeakBytes ?? server.memory().peakBytes) / MB;
    const problems = outcomeMismatches(actual, expected);
    const outcome = "error" in actual
      ? `${isErrorOutcome(expected) ? expected.status : "error"} "${actual.error.message}"`
      : `rows ${actual.response.rows}, bad rows ${actual.response.badRows}, departments ` +
        `${actual.response.departments}`;
    ctx.log(
      `  ${testCase.name} (${(input.size / MB).toFixed(1)} MB input): ${outcome} in ` +
        `${seconds.toFixed(2)} s; server RSS idle ${serverIdleRssMb.toFixed(1)} MB, ` +
        `peak ${serverPeakRssMb.toFixed(1)} MB` +
        (uploadPeakBytes === undefined
          ? ""
          : ` (${downloadPeakRssMb.toFixed(1)} MB once DownloadResult sent the result)`) +
        (problems.length > 0 ? `; WRONG: ${problems.join("; ")}` : ""),
    );
    return {
      name: testCase.name,
      inputBytes: input.size,
      seconds,
      outcome,
      problems,
      serverIdleRssMb,
      serverPeakRssMb,
      flatMemory,
    };
  }
}

if (import.meta.main) {
  const { runAsScript } = await import("./_report.ts");
  await runAsScript(hostileBench);
}
