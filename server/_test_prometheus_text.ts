/**
 * Reads Prometheus text exposition (what `GET /metrics` serves) into samples, for tests that check
 * what the counters say. Handles what prom-client writes: `name{label="value",...} number`, with
 * `\\`, `\"` and `\n` escapes in label values; comments are skipped.
 *
 * @example
 * ```ts
 * import { parsePrometheusText, sampleValue } from "./_test_prometheus_text.ts";
 * const samples = parsePrometheusText('# HELP x_total X.\nx_total{transport="grpc"} 2\n');
 * if (sampleValue(samples, "x_total", { transport: "grpc" }) !== 2) throw new Error();
 * ```
 *
 * @module
 */

/** One line of the exposition: a metric name, its labels and its value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/y;

/** Every sample in `text`; throws on a line that is neither a sample nor a comment. */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = SAMPLE_LINE.exec(line);
    if (match === null) throw new Error(`Not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = match[2] ?? "";
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < body.length) {
      const label = LABEL.exec(body);
      if (label === null) throw new Error(`Malformed labels in: ${line}`);
      labels[label[1]] = label[2].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const raw = match[3];
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    // prom-client writes NaN as `Nan`; Prometheus reads it either way.
    if (Number.isNaN(value) && !/^nan$/i.test(raw)) {
      throw new Error(`Not a sample value in: ${line}`);
    }
    samples.push({ name: match[1], labels, value });
  }
  return samples;
}

/**
 * The value of the one sample named `name` whose labels include `labels`; undefined when there is
 * none. Throws when several match, since the test then asked an ambiguous question.
 */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samples.filter((sample) =>
    sample.name === name &&
    Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
  );
  if (found.length > 1) {
    throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  }
  return found[0]?.value;
}
