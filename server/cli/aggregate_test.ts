import { deepEqual, equal, match } from "node:assert/strict";
import { gzipSync } from "fflate";
import { defaultOutputPath, parseAggregateArgs } from "./aggregate.ts";

const script = new URL("./aggregate.ts", import.meta.url).pathname;

async function runCli(...args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
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
  deepEqual(parseAggregateArgs(["a.csv", "--out=b.csv"]), { input: "a.csv", output: "b.csv" });
});
