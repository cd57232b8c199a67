import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { runDeno } from "../_test_run_deno.ts";
import { formatResultCsv } from "../aggregate/_reference.ts";
import {
  type AggregateArgs,
  aggregateFiles,
  defaultOutputPath,
  main,
  parseAggregateArgs,
} from "./aggregate.ts";

const script = new URL("./aggregate.ts", import.meta.url).pathname;

function runCli(...args: string[]) {
  return runDeno(["run", "--allow-read", "--allow-write", script, ...args]);
}

Deno.test("aggregate CLI writes the result beside the input and prints one JSON line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = `${dir}/sales.csv`;
    await Deno.writeTextFile(
      input,
      'Department Name,Date,Number of Sales\nToys,2024-01-02,3\n"Books, Music",2024-02-29,10\n' +
        "Toys,2023-02-29,4\nToys,2024-01-03,4\n",
    );
    const { code, stdout } = await runCli(input);
    equal(code, 0);
    const lines = stdout.trim().split("\n");
    equal(lines.length, 1);
    const summary = JSON.parse(lines[0]);
    equal(summary.rows, 4);
    equal(summary.bad_rows, 1);
    equal(summary.departments, 2);
    equal(summary.output, `${dir}/sales.result.csv`);
    equal(typeof summary.elapsed_sec, "number");
    deepEqual(summary.bad_row_samples, [{
      line: 4,
      reason: "invalid date",
      raw: "Toys,2023-02-29,4",
    }]);
    equal(
      await Deno.readTextFile(`${dir}/sales.result.csv`),
      'Department Name,Total Number of Sales\n"Books, Music",10\nToys,7\n',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aggregate CLI honours --out", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/in.csv`, "Toys,2024-01-02,3\n");
    const { code, stdout } = await runCli(`${dir}/in.csv`, "--out", `${dir}/totals.csv`);
    equal(code, 0);
    equal(JSON.parse(stdout).output, `${dir}/totals.csv`);
    equal(
      await Deno.readTextFile(`${dir}/totals.csv`),
      "Department Name,Total Number of Sales\nToys,3\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aggregate CLI reads gzip-compressed input like the plain file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const csv = "Department Name,Date,Number of Sales\nToys,2024-01-02,3\nToys,2024-01-03,4\n";
    await Deno.writeFile(`${dir}/sales.csv.gz`, gzipSync(new TextEncoder().encode(csv)));
    const { code, stdout } = await runCli(`${dir}/sales.csv.gz`);
    equal(code, 0);
    equal(JSON.parse(stdout).output, `${dir}/sales.result.csv`);
    equal(
      await Deno.readTextFile(`${dir}/sales.result.csv`),
      "Department Name,Total Number of Sales\nToys,7\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aggregate CLI fails clearly on a missing input", async () => {
  const { code, stdout, stderr } = await runCli("/nonexistent/sales.csv");
  equal(code, 1);
  equal(stdout, "");
  match(stderr, /Cannot read \/nonexistent\/sales\.csv: no such file/);
});

Deno.test("aggregate CLI fails clearly on a directory and on no arguments", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const asDirectory = await runCli(dir);
    equal(asDirectory.code, 1);
    match(asDirectory.stderr, /Cannot read .*: not a regular file/);
    const none = await runCli();
    equal(none.code, 2);
    match(none.stderr, /Missing the input file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseAggregateArgs derives the default output name", () => {
  equal(defaultOutputPath("data/sales.csv"), "data/sales.result.csv");
  equal(defaultOutputPath("data/sales.CSV"), "data/sales.result.csv");
  equal(defaultOutputPath("sales.txt"), "sales.txt.result.csv");
  equal(defaultOutputPath("data/sales.csv.gz"), "data/sales.result.csv");
  deepEqual(parseAggregateArgs(["a.csv", "--out=b.csv", "--threads", "3"]), {
    input: "a.csv",
    inputs: ["a.csv"],
    output: "b.csv",
    threads: 3,
    json: false,
    force: false,
  });
  const parse = (args: string[]) => parseAggregateArgs(args) as AggregateArgs;
  equal(parse(["a.csv"]).threads, navigator.hardwareConcurrency);
  equal(parse(["-t", "1", "a.csv", "-o", "c.csv"]).output, "c.csv");
  deepEqual(
    [parse(["a.csv", "--json", "--force"]).json, parse(["a.csv", "--json", "--force"]).force],
    [true, true],
  );
  equal(parseAggregateArgs(["--help"]), "help");
});

Deno.test("parseAggregateArgs refuses bad options with the usage", () => {
  for (
    const args of [["a.csv", "--threads", "0"], ["a.csv", "--threads=x"], ["a.csv", "--bogus"]]
  ) {
    throws(() => parseAggregateArgs(args), /Usage: deno task aggregate/);
  }
});

Deno.test("parseAggregateArgs takes several inputs, the output beside the first", () => {
  const parsed = parseAggregateArgs(["a.csv", "b.csv.gz", "-t", "1", "c.csv"]) as AggregateArgs;
  deepEqual(parsed.inputs, ["a.csv", "b.csv.gz", "c.csv"]);
  equal(parsed.input, "a.csv");
  equal(parsed.output, "a.result.csv");
});

Deno.test("aggregate CLI gives the same output and samples on 1 and 3 threads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Over 12 MiB, so that 3 threads each get a range; quoted line breaks everywhere, and bad
    // rows throughout, so that samples come from every range.
    const block = '"Home\nGarden",2024-01-01,1\nToys,2024-01-02,2\n"A\r\nB",2024-13-01,3\n';
    const rows = Math.ceil((13 * 1024 * 1024) / block.length);
    const lines = ["Department Name,Date,Number of Sales\n"];
    for (let i = 0; i < rows; i++) lines.push(i % 50_000 === 0 ? `"bad\n${i}"\n` : block);
    await Deno.writeTextFile(`${dir}/in.csv`, lines.join(""));
    const one = await runCli(`${dir}/in.csv`, "--threads", "1", "--out", `${dir}/one.csv`);
    const three = await runCli(`${dir}/in.csv`, "--threads", "3", "--out", `${dir}/three.csv`);
    equal(one.code, 0);
    equal(three.code, 0);
    const summary = (stdout: string) => {
      const { elapsed_sec: _, output: __, ...rest } = JSON.parse(stdout);
      return rest;
    };
    deepEqual(summary(three.stdout), summary(one.stdout));
    ok(summary(one.stdout).bad_row_samples.length > 1);
    deepEqual(await Deno.readFile(`${dir}/three.csv`), await Deno.readFile(`${dir}/one.csv`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function captureIo(stdoutIsTerminal: boolean) {
  const io = { stdout: "", stderr: "", stdoutIsTerminal };
  return {
    io,
    sink: {
      stdout: (text: string) => io.stdout += text + "\n",
      stderr: (text: string) => io.stderr += text + "\n",
      stdoutIsTerminal,
    },
  };
}

Deno.test("aggregate CLI prints a summary on a terminal and the JSON line with --json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = `${dir}/sales.csv`;
    // Seven bad rows, some with control characters: only five are listed, escaped.
    const bad = ["A\u0001B,2024-01-02,x", "Toys,2024-13-01,1", "C\tD,2024-01-02,x", "E,F"];
    await Deno.writeTextFile(
      input,
      "Department Name,Date,Number of Sales\nToys,2024-01-02,3\n" +
        [...bad, ...bad.slice(0, 3)].join("\n") + "\nBooks,2024-01-03,10\n",
    );
    const { io, sink } = captureIo(true);
    equal(await main([input, "--threads", "1"], sink), 0, io.stderr);
    const lines = io.stdout.trimEnd().split("\n");
    equal(lines[0], `Aggregated ${input}: 9 rows (7 bad rows), 2 departments`);
    match(lines[1], /^ {2}Time {5}\d+\.\d\d s, \d+\.\d MB\/s \(0\.0 MB\)$/);
    equal(lines[2], `  Result   ${dir}/sales.result.csv`);
    equal(lines[3], "First 5 of 7 bad rows:");
    match(lines[4], /^ {2}line 3: .*: A\\x01B,2024-01-02,x$/);
    match(lines[6], /^ {2}line 5: .*: C\\tD,2024-01-02,x$/);
    equal(lines.length, 9);
    // deno-lint-ignore no-control-regex
    ok(!/[\x00-\x08\x0b-\x1f]/.test(io.stdout), "no raw control characters");

    const json = captureIo(true);
    equal(await main([input, "--threads", "1", "--json"], json.sink), 0);
    const printed = JSON.parse(json.io.stdout);
    deepEqual(Object.keys(printed), [
      "rows",
      "bad_rows",
      "departments",
      "elapsed_sec",
      "output",
      "bad_row_samples",
    ]);
    // The JSON keeps every sample; the summary lists five.
    equal(printed.bad_row_samples.length, 7);
    equal(printed.bad_row_samples[0].raw, "A\u0001B,2024-01-02,x");
    // Not a terminal: the same JSON line without --json.
    const piped = await runCli(input, "--threads", "1");
    deepEqual(Object.keys(JSON.parse(piped.stdout)), Object.keys(printed));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aggregate CLI refuses an empty or binary file as the page does, unless --force", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/empty.csv`, new Uint8Array());
    await Deno.writeFile(`${dir}/photo.png`, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13]));
    for (
      const [name, words] of [
        ["empty.csv", "is empty. Choose a file with a header and rows."],
        ["photo.png", "does not look like a CSV file: it contains binary data."],
      ]
    ) {
      const refused = await runCli(`${dir}/${name}`);
      equal(refused.code, 1);
      equal(refused.stdout, "");
      equal(
        refused.stderr,
        `error: “${dir}/${name}” ${words} Pass --force to aggregate it anyway\n`,
      );
      ok(!(await Deno.stat(`${dir}/${name}.result.csv`).catch(() => undefined)));
      const forced = await runCli(`${dir}/${name}`, "--force");
      equal(forced.code, 0, forced.stderr);
      equal(JSON.parse(forced.stdout).departments, 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aggregate CLI aggregates several files, plain and gzip, into one result", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = `${dir}/a.csv`;
    const b = `${dir}/b.csv.gz`;
    const c = `${dir}/c.csv`;
    await Deno.writeTextFile(a, "Department Name,Date,Number of Sales\nToys,2024-01-02,3\n");
    await Deno.writeFile(
      b,
      gzipSync(
        new TextEncoder().encode("Toys,2024-01-03,4\nBooks,2024-13-01,1\nBooks,2024-01-04,5\n"),
      ),
    );
    // A quote left open at the end is this file's bad row; the next file starts afresh.
    await Deno.writeTextFile(
      c,
      'Department Name,Date,Number of Sales\nGarden,2024-01-05,2\n"Open,1',
    );
    const out = `${dir}/all.csv`;
    const { code, stdout, stderr } = await runCli(a, b, c, "--out", out, "--threads", "2");
    equal(code, 0, stderr);
    const printed = JSON.parse(stdout);
    equal(printed.rows, 6);
    equal(printed.bad_rows, 2);
    equal(printed.departments, 3);
    deepEqual(printed.files, [
      { name: a, rows: 1, bad_rows: 0, departments: 1 },
      { name: b, rows: 3, bad_rows: 1, departments: 2 },
      { name: c, rows: 2, bad_rows: 1, departments: 1 },
    ]);
    deepEqual(printed.bad_row_samples, [
      { line: 2, reason: "invalid date", raw: "Books,2024-13-01,1", file: b, file_index: 1 },
      { line: 3, reason: "unterminated quoted field", raw: '"Open,1', file: c, file_index: 2 },
    ]);
    const all = await Deno.readFile(out);
    equal(
      new TextDecoder().decode(all),
      "Department Name,Total Number of Sales\nBooks,5\nGarden,2\nToys,7\n",
    );
    // The same bytes as the in-process function on one thread.
    equal(
      formatResultCsv((await aggregateFiles([a, b, c], { threads: 1 })).totals),
      new TextDecoder().decode(all),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aggregate CLI prints each file in the terminal summary", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.csv`, "Toys,2024-01-02,3\n");
    await Deno.writeTextFile(`${dir}/b.csv`, "Toys,2024-01-02,x\n");
    const printed: string[] = [];
    const io = {
      stdout: (text: string) => printed.push(text),
      stderr: () => {},
      stdoutIsTerminal: true,
    };
    equal(await main([`${dir}/a.csv`, `${dir}/b.csv`, "-o", `${dir}/r.csv`], io), 0);
    const text = printed.join("\n");
    match(text, /Aggregated .*a\.csv, .*b\.csv: 2 rows \(1 bad row\), 1 department/);
    match(
      text,
      /Files:\n.*a\.csv +1 row \(0 bad rows\), 1 department\n.*b\.csv +1 row \(1 bad row\), 0 departments/,
    );
    match(text, /b\.csv line 1: invalid number of sales: Toys,2024-01-02,x/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aggregate CLI fails on one file's corrupt gzip, naming that file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.csv`, "Toys,2024-01-02,3\n");
    const gzip = gzipSync(new TextEncoder().encode("Toys,2024-01-02,3\n".repeat(100)));
    await Deno.writeFile(`${dir}/b.csv.gz`, gzip.subarray(0, gzip.length - 9));
    await Deno.writeTextFile(`${dir}/c.csv`, "Toys,2024-01-02,3\n");
    const { code, stdout, stderr } = await runCli(
      `${dir}/a.csv`,
      `${dir}/b.csv.gz`,
      `${dir}/c.csv`,
      "--out",
      `${dir}/r.csv`,
    );
    equal(code, 1);
    equal(stdout, "");
    match(
      stderr,
      /Cannot aggregate .*\/b\.csv\.gz: The gzip data is truncated.*\(in .*\/b\.csv\.gz\)/,
    );
    let written = true;
    await Deno.stat(`${dir}/r.csv`).catch(() => written = false);
    equal(written, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
