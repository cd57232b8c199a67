import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { GrpcSalesClient } from "../grpc/sales_client.ts";
import { startServer } from "../main.ts";
import { loopbackEnv } from "../_test_loopback_env.ts";
import { runDeno } from "../_test_run_deno.ts";
import { type DownloadIo, main, parseDownloadArgs } from "./download.ts";

const DOWNLOAD = new URL("./download.ts", import.meta.url).pathname;
const encoder = new TextEncoder();

/** A CSV of many departments, so the result is big enough to be cut in the middle. */
function salesCsv(departments: number): string {
  const lines = ["Department Name,Date,Number of Sales"];
  for (let i = 0; i < departments; i++) lines.push(`Dept ${i},2024-01-02,${i % 97}`);
  lines.push("Broken,not a date,1");
  return lines.join("\n") + "\n";
}

interface Captured extends DownloadIo {
  out: string[];
  err: string[];
}

function captured(terminal = false): Captured {
  const out: string[] = [], err: string[] = [];
  return {
    out,
    err,
    stdout: (line) => out.push(line),
    stderr: (text) => err.push(text),
    stderrIsTerminal: terminal,
    stdoutIsTerminal: terminal,
  };
}

/** A whole server on port 0 with one stored result, uploaded as `filename`. */
async function withResult(
  env: Record<string, string>,
  filename: string,
  fn: (t: {
    address: string;
    dir: string;
    resultId: string;
    downloadUrl: string;
    expected: Uint8Array;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "download_cli_test_" });
  const server = await startServer(
    loadConfig({ ...loopbackEnv(`${dir}/storage`), ...env }),
    { log: () => {} },
  );
  const address = `127.0.0.1:${server.grpc.port}`;
  const token = env.SALES_API_TOKEN;
  const client = new GrpcSalesClient(address, {
    metadata: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  try {
    const uploaded = await client.uploadStream([encoder.encode(salesCsv(3000))], filename);
    // A plain Uint8Array, as files read back are: grpc-js gives a Buffer.
    const expected = new Uint8Array(await client.downloadResult(uploaded.resultId));
    await fn({
      address,
      dir,
      resultId: uploaded.resultId,
      downloadUrl: uploaded.downloadUrl,
      expected,
    });
  } finally {
    client.close();
    await server.shutdown(2_000);
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs the download command with `dir` as its working folder, in a child process: the working
 * folder belongs to the whole process, which `deno test --parallel` shares between test files.
 */
function downloadIn(dir: string, args: string[], env: Record<string, string> = {}) {
  return runDeno(["run", "--allow-all", DOWNLOAD, ...args], { cwd: dir, env });
}

Deno.test("parseDownloadArgs tells ids from URLs and refuses anything else", () => {
  const id = "0123456789abcdef0123456789abcdef";
  assert.deepEqual(parseDownloadArgs([id]), {
    target: { resultId: id },
    output: undefined,
    address: "localhost:50051",
    json: false,
  });
  const parsed = parseDownloadArgs([`http://h:8080/results/${id}.csv?exp=1&sig=x`, "-o", "a.csv"]);
  assert.ok(parsed !== "help" && "url" in parsed.target);
  assert.equal(parsed.target.url.searchParams.get("sig"), "x");
  assert.equal(parsed.output, "a.csv");
  assert.equal(parseDownloadArgs(["--help"]), "help");
  for (
    const args of [[], ["nope"], [id.toUpperCase()], ["ftp://h/x"], [id, "--addr", "h"], [id, id]]
  ) {
    assert.throws(() => parseDownloadArgs(args), /Usage: deno task download/, JSON.stringify(args));
  }
});

Deno.test({
  name: "download --help exits 0 with the usage, every option and two examples",
  async fn() {
    const output = await runDeno(["run", "--allow-all", DOWNLOAD, "--help"]);
    assert.equal(output.code, 0);
    const text = output.stdout;
    for (const option of ["--out", "--addr", "--json", "--help", "SALES_API_TOKEN"]) {
      assert.ok(text.includes(option), option);
    }
    assert.equal(text.match(/^ {2}deno task download /gm)?.length, 2);
  },
});

Deno.test({
  name: "download by id saves <original>.result.csv through GetResult, behind the token",
  async fn() {
    const env = { SALES_API_TOKEN: "t0ken", SALES_URL_SECRET: "a long random secret" };
    await withResult(env, "ventes été.csv.gz", async (t) => {
      const work = await Deno.makeTempDir({ dir: t.dir });
      const run = await downloadIn(work, [t.resultId, "--addr", t.address], {
        SALES_API_TOKEN: "t0ken",
      });
      assert.equal(run.code, 0, run.stderr);
      const name = "ventes été.result.csv";
      assert.deepEqual(await Deno.readFile(`${work}/${name}`), t.expected);
      assert.deepEqual([...Deno.readDirSync(work)].map((entry) => entry.name), [name]);
      const line = JSON.parse(run.stdout);
      assert.deepEqual({ ...line, elapsed_sec: 0 }, {
        result_id: t.resultId,
        output: name,
        bytes: t.expected.length,
        elapsed_sec: 0,
        filename: "ventes été.csv.gz",
        rows: 3001,
        bad_rows: 1,
        departments: 3000,
      });

      // Without the token: told what to do, nothing saved.
      const refused = captured();
      assert.equal(
        await main([t.resultId, "--addr", t.address, "--out", `${work}/x.csv`], refused),
        1,
      );
      assert.match(refused.err.join(""), /requires an access token: set SALES_API_TOKEN/);
      const unknown = captured();
      const args = ["f".repeat(32), "--addr", t.address, "--out", `${work}/x.csv`];
      assert.equal(await main(args, unknown, { SALES_API_TOKEN: "t0ken" }), 1);
      assert.match(unknown.err.join(""), /not found \(NOT_FOUND\)/);
      assert.deepEqual([...Deno.readDirSync(work)].map((entry) => entry.name), [name]);
    });
  },
});

Deno.test({
  name:
    "download by URL saves the result, named by Content-Disposition or --out, and resumes a partial file",
  async fn() {
    await withResult({}, "sales.csv", async (t) => {
      const work = await Deno.makeTempDir({ dir: t.dir });
      const run = await downloadIn(work, [t.downloadUrl]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(await Deno.readFile(`${work}/sales.result.csv`), t.expected);
      assert.equal(JSON.parse(run.stdout).output, "sales.result.csv");

      // A download cut short earlier left <file>.part: only the rest is fetched.
      const out = `${work}/totals.csv`;
      const half = Math.floor(t.expected.length / 2);
      await Deno.writeFile(`${out}.part`, t.expected.subarray(0, half));
      const resumed = captured();
      assert.equal(await main([t.downloadUrl, "--out", out], resumed), 0, resumed.err.join(""));
      assert.deepEqual(await Deno.readFile(out), t.expected);
      const line = JSON.parse(resumed.out[0]);
      assert.equal(line.resumed_from, half);
      assert.equal(line.bytes, t.expected.length);
      assert.equal(line.result_id, t.resultId);
      assert.ok(!(await Deno.stat(`${out}.part`).then(() => true, () => false)));

      // A part file that is already whole is simply put in place (the server answers 416).
      await Deno.writeFile(`${out}.part`, t.expected);
      await Deno.remove(out);
      assert.equal(await main([t.downloadUrl, "--out", out], captured()), 0);
      assert.deepEqual(await Deno.readFile(out), t.expected);

      // An unknown result: the server's words, and no file.
      const missing = captured();
      const unknownUrl = t.downloadUrl.replace(t.resultId, "f".repeat(32));
      assert.equal(await main([unknownUrl, "--out", `${work}/none.csv`], missing), 1);
      assert.match(missing.err.join(""), /answered 404: Result not found/);
      assert.ok(!(await Deno.stat(`${work}/none.csv.part`).then(() => true, () => false)));
    });
  },
});

Deno.test({
  name: "download on a terminal draws progress on stderr and prints a summary",
  async fn() {
    await withResult({}, "q1.csv", async (t) => {
      const io = captured(true);
      const out = `${t.dir}/q1.csv`;
      assert.equal(await main([t.resultId, "--addr", t.address, "--out", out], io), 0);
      const err = io.err.join("");
      assert.match(err, /Asking 127\.0\.0\.1:\d+ for result/);
      assert.match(err, /\[#+\] 100%/);
      const summary = io.out.join("\n");
      assert.match(summary, new RegExp(`^Saved ${out} \\([\\d,]+ bytes\\)`));
      assert.match(summary, /3,000 departments from 3,001 rows \(1 bad row\) of q1\.csv/);
    });
  },
});

Deno.test({
  name: "download explains a service it cannot reach",
  async fn() {
    const io = captured();
    const code = await main(["0123456789abcdef0123456789abcdef", "--addr", "127.0.0.1:1"], io);
    assert.equal(code, 1);
    assert.equal(
      io.err.join(""),
      "error: Cannot reach the service at 127.0.0.1:1. Is it running? Start it with `deno task start`.\n",
    );
  },
});

Deno.test({
  name: "download of a result of several files lists each file's counts and the bad rows' files",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "download_cli_test_" });
    const server = await startServer(loadConfig(loopbackEnv(`${dir}/storage`)), { log: () => {} });
    const address = `127.0.0.1:${server.grpc.port}`;
    const client = new GrpcSalesClient(address);
    try {
      const header = "Department Name,Date,Number of Sales\n";
      const uploaded = await client.uploadFilesStream([
        { name: "north.csv", chunks: [encoder.encode(`${header}Toys,2024-01-02,3\nGarden,x,1\n`)] },
        {
          name: "south\tq1.csv",
          chunks: [encoder.encode(`${header}Toys,2024-01-02,4\nBooks,2024-01-03,5\nBad,,\n`)],
        },
      ]);
      const expected = new Uint8Array(await client.downloadResult(uploaded.resultId));

      const json = captured();
      const out = `${dir}/both.csv`;
      assert.equal(await main([uploaded.resultId, "--addr", address, "--out", out], json), 0);
      assert.deepEqual(await Deno.readFile(out), expected);
      assert.deepEqual({ ...JSON.parse(json.out[0]), elapsed_sec: 0 }, {
        result_id: uploaded.resultId,
        output: out,
        bytes: expected.length,
        elapsed_sec: 0,
        filename: "north.csv",
        rows: 5,
        bad_rows: 2,
        departments: 2,
        bad_row_samples: [
          {
            line: 3,
            reason: uploaded.badRowSamples[0].reason,
            raw: "Garden,x,1",
            file: "north.csv",
            file_index: 0,
          },
          {
            line: 4,
            reason: uploaded.badRowSamples[1].reason,
            raw: "Bad,,",
            file: "south\tq1.csv",
            file_index: 1,
          },
        ],
        files: [
          { name: "north.csv", rows: 2, bad_rows: 1, departments: 1 },
          { name: "south\tq1.csv", rows: 3, bad_rows: 1, departments: 2 },
        ],
      });

      const terminal = captured(true);
      assert.equal(await main([uploaded.resultId, "--addr", address, "--out", out], terminal), 0);
      const lines = terminal.out.join("\n").split("\n");
      assert.match(lines[1], /2 departments from 5 rows \(2 bad rows\) of 2 files$/);
      assert.deepEqual(lines.slice(3), [
        "Files:",
        "  north.csv      2 rows (1 bad row), 1 department",
        "  south\\tq1.csv  3 rows (1 bad row), 2 departments",
        "Bad rows:",
        `  north.csv line 3: ${uploaded.badRowSamples[0].reason}: Garden,x,1`,
        `  south\\tq1.csv line 4: ${uploaded.badRowSamples[1].reason}: Bad,,`,
      ]);
    } finally {
      client.close();
      await server.shutdown(2_000);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
