import assert from "node:assert/strict";
import { gunzipSync, gzipSync } from "node:zlib";
import { loadConfig } from "../config.ts";
import { startServer } from "../main.ts";
import {
  CHUNK_BYTES,
  gzipChunks,
  main,
  parseUploadArgs,
  uploadChunks,
  type UploadIo,
} from "./upload.ts";
import { loopbackEnv } from "../_test_loopback_env.ts";
import { runDeno } from "../_test_run_deno.ts";
import { CORRUPT_SECOND, expectedResult, THREE_FILES } from "../service/_test_multi_file.ts";

const SAMPLE = new URL("../../testdata/sample.csv", import.meta.url).pathname;
const UPLOAD = new URL("./upload.ts", import.meta.url).pathname;
const AGGREGATE = new URL("./aggregate.ts", import.meta.url).pathname;

async function withServer(
  fn: (address: string, dir: string) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "upload_cli_test_" });
  const server = await startServer(
    loadConfig({
      ...loopbackEnv(`${dir}/storage`),
      ...env,
    }),
    { log: () => {} },
  );
  try {
    await fn(`127.0.0.1:${server.grpc.port}`, dir);
  } finally {
    await server.shutdown(2_000);
    await Deno.remove(dir, { recursive: true });
  }
}

function captureIo(stderrIsTerminal: boolean) {
  const io = { stdout: [] as string[], stderr: "" };
  const sink: UploadIo = {
    stdout: (line) => io.stdout.push(line),
    stderr: (text) => io.stderr += text,
    stderrIsTerminal,
  };
  return { io, sink };
}

Deno.test("parseUploadArgs reads the file, --addr and --out in either form", () => {
  assert.deepEqual(parseUploadArgs(["a.csv"]), {
    input: "a.csv",
    address: "localhost:50051",
    output: undefined,
    compress: true,
    chunked: false,
    json: false,
    force: false,
  });
  assert.deepEqual(
    parseUploadArgs([
      "--addr",
      "10.0.0.1:9000",
      "a.csv",
      "--out=r.csv",
      "--no-compress",
      "--chunked",
      "--json",
      "--force",
    ]),
    {
      input: "a.csv",
      address: "10.0.0.1:9000",
      output: "r.csv",
      compress: false,
      chunked: true,
      json: true,
      force: true,
    },
  );
  assert.deepEqual(parseUploadArgs(["a.csv", "--addr=[::1]:50051"]), {
    ...parseUploadArgs(["a.csv"]) as object,
    address: "[::1]:50051",
  });
  assert.equal(parseUploadArgs(["a.csv", "--help"]), "help");
  assert.equal(parseUploadArgs(["-h"]), "help");
});

Deno.test("parseUploadArgs rejects bad command lines with the usage", () => {
  for (
    const args of [[], ["--nope", "a.csv"], ["a.csv", "--out"], [
      "a.csv",
      "--addr",
      "nohost",
    ]]
  ) {
    assert.throws(() => parseUploadArgs(args), /Usage: deno task upload/);
  }
});

Deno.test("parseUploadArgs takes several files, in order", () => {
  const parsed = parseUploadArgs(["a.csv", "b.csv.gz", "--chunked", "c.csv"]);
  assert.ok(parsed !== "help");
  assert.equal(parsed.input, "a.csv");
  assert.deepEqual(parsed.inputs, ["a.csv", "b.csv.gz", "c.csv"]);
  assert.equal(parsed.chunked, true);
});

Deno.test("uploadChunks gzips a plain file, and sends a gzip file or --no-compress as is", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "upload_chunks_test_" });
  try {
    const csv = await Deno.readFile(SAMPLE);
    const gz = new Uint8Array(gzipSync(csv));
    await Deno.writeFile(`${dir}/sales.csv`, csv);
    await Deno.writeFile(`${dir}/sales.csv.gz`, gz);
    const cases = [
      { name: "plain, compressed", path: "sales.csv", compress: true, compressed: true },
      { name: "plain, --no-compress", path: "sales.csv", compress: false, compressed: false },
      { name: "already gzip", path: "sales.csv.gz", compress: true, compressed: false },
    ];
    for (const { name, path, compress, compressed } of cases) {
      await t.step(name, async () => {
        const source = await uploadChunks(await Deno.open(`${dir}/${path}`), compress);
        assert.equal(source.compressed, compressed);
        const sent = await Array.fromAsync(source.chunks);
        const bytes = new Uint8Array(sent.reduce((sum, chunk) => sum + chunk.length, 0));
        sent.reduce((at, chunk) => (bytes.set(chunk, at), at + chunk.length), 0);
        const file = path.endsWith(".gz") ? gz : csv;
        assert.equal(source.fileBytesRead(), file.length);
        if (compressed) {
          assert.deepEqual(new Uint8Array(gunzipSync(bytes)), csv);
          assert.ok(bytes.length < csv.length / 2, `${bytes.length} of ${csv.length}`);
        } else {
          assert.deepEqual(bytes, file);
        }
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gzipChunks reads no further ahead than a few chunks of a slow sender", async () => {
  let produced = 0;
  async function* endless() {
    const random = new Uint8Array(CHUNK_BYTES);
    for (let i = 0; i < 400; i++) {
      // Random bytes do not compress: the output is as large as the input.
      for (let at = 0; at < random.length; at += 65_536) {
        crypto.getRandomValues(random.subarray(at, at + 65_536));
      }
      produced += CHUNK_BYTES;
      yield random.slice();
    }
  }
  let consumed = 0;
  for await (const chunk of gzipChunks(endless())) {
    consumed += chunk.length;
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (consumed > 8 * CHUNK_BYTES) break;
  }
  assert.ok(produced - consumed <= 16 * CHUNK_BYTES, `${produced} read, ${consumed} sent`);
});

Deno.test({
  name: "main prints one JSON line and writes the same result as the aggregate command",
  async fn(t) {
    for (const flags of [[], ["--no-compress"], ["--chunked"], ["--chunked", "--no-compress"]]) {
      await t.step(flags.join(" ") || "compressed", () => checkAgainstAggregate(flags));
    }
  },
});

async function checkAgainstAggregate(flags: string[]): Promise<void> {
  {
    await withServer(async (address, dir) => {
      const { io, sink } = captureIo(false);
      const code = await main(
        [SAMPLE, "--addr", address, "--out", `${dir}/result.csv`, ...flags],
        sink,
      );
      assert.equal(code, 0, io.stderr);
      assert.equal(io.stderr, "", "no progress bar when stderr is not a terminal");
      assert.equal(io.stdout.length, 1);
      const printed = JSON.parse(io.stdout[0]);
      assert.match(printed.result_id, /^[0-9a-f]{32}$/);
      assert.match(printed.download_url, new RegExp(`/results/${printed.result_id}\\.csv$`));
      assert.equal(printed.output, `${dir}/result.csv`);

      const reference = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          AGGREGATE,
          SAMPLE,
          "--out",
          `${dir}/reference.csv`,
        ],
        stdout: "piped",
      });
      const { code: referenceCode, stdout } = await reference.output();
      assert.equal(referenceCode, 0);
      const expected = JSON.parse(new TextDecoder().decode(stdout));
      for (const key of ["rows", "bad_rows", "departments", "bad_row_samples"]) {
        assert.deepEqual(printed[key], expected[key], key);
      }
      assert.equal(
        await Deno.readTextFile(`${dir}/result.csv`),
        await Deno.readTextFile(`${dir}/reference.csv`),
      );
    });
  }
}

Deno.test({
  name: "main draws a progress bar on stderr when it is a terminal",
  async fn() {
    await withServer(async (address) => {
      const { io, sink } = captureIo(true);
      assert.equal(await main([SAMPLE, "--addr", address], sink), 0, io.stderr);
      // One status line, redrawn: "Connecting…", the bar, "Computing totals…", the final bar.
      const frames = io.stderr.split("\r").slice(1);
      assert.equal(frames[0], `Connecting to ${address}…\u001b[K`);
      const computing = frames.findIndex((frame) => frame.includes("Computing totals…"));
      assert.ok(computing > 0, JSON.stringify(frames));
      assert.ok(frames.slice(computing + 1).every((frame) => !frame.includes("Connecting")));
      const lastLine = frames.at(-1)!;
      assert.match(
        lastLine,
        /^\[#{30}\] 100% {2}[\d.]+ MB \/ [\d.]+ MB {2}[\d.]+ MB\/s {2}ETA \d+:\d\d/,
      );
      assert.ok(lastLine.endsWith("\u001b[K\n"), JSON.stringify(lastLine));
      assert.equal(io.stdout.length, 1);
    });
  },
});

Deno.test("main fails clearly for a missing file and an unreachable server", async () => {
  const missing = captureIo(false);
  assert.equal(await main(["/nonexistent/sales.csv"], missing.sink), 1);
  assert.equal(missing.io.stderr, "error: Cannot read /nonexistent/sales.csv: no such file\n");
  assert.deepEqual(missing.io.stdout, []);

  // A port nothing listens on: bind one, then free it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  for (const terminal of [false, true]) {
    const unreachable = captureIo(terminal);
    assert.equal(await main([SAMPLE, "--addr", `127.0.0.1:${port}`], unreachable.sink), 1);
    const lastLine = unreachable.io.stderr.split("\r\u001b[K").at(-1);
    assert.equal(
      lastLine,
      `error: Cannot reach the service at 127.0.0.1:${port}. Is it running? ` +
        "Start it with `deno task start`.\n",
    );
    // No bar was drawn: it waits for the connection.
    assert.ok(!unreachable.io.stderr.includes("%"), unreachable.io.stderr);
    assert.deepEqual(unreachable.io.stdout, []);
  }
});

Deno.test({
  name: "upload.ts exits non-zero with a usage message and zero with JSON on stdout",
  async fn() {
    const usage = await runDeno(["run", "-A", UPLOAD]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Usage: deno task upload/);

    await withServer(async (address) => {
      const run = await runDeno(["run", "-A", UPLOAD, SAMPLE, "--addr", address]);
      assert.equal(run.code, 0, run.stderr);
      const lines = run.stdout.trimEnd().split("\n");
      assert.equal(lines.length, 1);
      assert.ok(JSON.parse(lines[0]).rows > 0);
    });
  },
});

Deno.test({
  name: "main sends SALES_API_TOKEN and explains a missing or wrong token",
  async fn() {
    const token = "cli-t0ken";
    await withServer(async (address, dir) => {
      const cases = [
        {
          env: {},
          message:
            /requires an access token: set SALES_API_TOKEN in the environment to the server's/,
        },
        { env: { SALES_API_TOKEN: "" }, message: /requires an access token: set SALES_API_TOKEN/ },
        {
          env: { SALES_API_TOKEN: "wrong" },
          message: /refused SALES_API_TOKEN: The access token is not valid; check that it matches/,
        },
      ];
      for (const { env, message } of cases) {
        const { io, sink } = captureIo(false);
        assert.equal(await main([SAMPLE, "--addr", address], sink, env), 1);
        assert.match(io.stderr, /^error: The sales service at 127\.0\.0\.1:\d+ /);
        assert.match(io.stderr, message);
        assert.match(io.stderr, /\(UNAUTHENTICATED\)\n$/);
        assert.ok(!io.stderr.includes(token));
        assert.deepEqual(io.stdout, []);
      }
      const { io, sink } = captureIo(false);
      const code = await main(
        [SAMPLE, "--addr", address, "--out", `${dir}/result.csv`],
        sink,
        { SALES_API_TOKEN: token },
      );
      assert.equal(code, 0, io.stderr);
      assert.ok(JSON.parse(io.stdout[0]).rows > 0);
      // --out downloads with DownloadResult, which needs the token too.
      assert.match(await Deno.readTextFile(`${dir}/result.csv`), /^Department Name,Total/);

      const { io: bad, sink: badSink } = captureIo(false);
      assert.equal(await main([SAMPLE], badSink, { SALES_API_TOKEN: "two words" }), 2);
      assert.match(bad.stderr, /SALES_API_TOKEN must contain only visible ASCII/);
    }, { SALES_API_TOKEN: token });
  },
});

Deno.test({
  name: "upload.ts reads SALES_API_TOKEN from its environment",
  async fn() {
    const token = "env-t0ken";
    await withServer(async (address) => {
      const run = (env: Record<string, string>) =>
        runDeno([
          "run",
          "--allow-net",
          "--allow-read",
          "--allow-env",
          "--allow-sys",
          UPLOAD,
          SAMPLE,
          "--addr",
          address,
        ], { env });
      const refused = await run({ SALES_API_TOKEN: "" });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /\(UNAUTHENTICATED\)/);
      const accepted = await run({ SALES_API_TOKEN: token });
      assert.equal(accepted.code, 0, accepted.stderr);
      assert.ok(JSON.parse(accepted.stdout).rows > 0);
    }, { SALES_API_TOKEN: token });
  },
});

Deno.test({
  name: "main prints a summary for people on a terminal, and the JSON line with --json",
  async fn() {
    await withServer(async (address, dir) => {
      // Bad rows with control characters, as a binary file's rows have.
      const input = `${dir}/sales.csv`;
      await Deno.writeTextFile(
        input,
        "Department Name,Date,Number of Sales\nToys,2024-01-02,3\n" +
          "Bad\u0007Row,2024-01-02,x\nToys,2024-13-01,1\nA,B\nC,2024-01-02,-1\nD\tE,2024-02-30,1\n" +
          "Books,2024-01-03,4\n",
      );
      const { io, sink } = captureIo(false);
      sink.stdoutIsTerminal = true;
      assert.equal(await main([input, "--addr", address, "--out", `${dir}/r.csv`], sink), 0);
      assert.equal(io.stdout.length, 1);
      const lines = io.stdout[0].split("\n");
      assert.equal(lines[0], `Uploaded ${input}: 7 rows (5 bad rows), 2 departments`);
      assert.match(lines[1], /^ {2}Time {5}\d+\.\d\d s, \d+\.\d MB\/s \(0\.0 MB\)$/);
      assert.match(lines[2], /^ {2}Result {3}http:\/\/\S+\/results\/[0-9a-f]{32}\.csv$/);
      assert.match(lines[3], /^ {2}Id {7}[0-9a-f]{32}$/);
      assert.equal(lines[4], `  Saved    ${dir}/r.csv`);
      assert.equal(lines[5], "Bad rows:");
      assert.match(lines[6], /^ {2}line 3: .*: Bad\\x07Row,2024-01-02,x$/);
      assert.match(lines[10], /^ {2}line 7: .*: D\\tE,2024-02-30,1$/);
      assert.equal(lines.length, 11);
      // deno-lint-ignore no-control-regex
      assert.ok(!/[\x00-\x08\x0b-\x1f]/.test(io.stdout[0]), "no raw control characters");

      const json = captureIo(false);
      json.sink.stdoutIsTerminal = true;
      assert.equal(await main([input, "--addr", address, "--json"], json.sink), 0);
      const printed = JSON.parse(json.io.stdout[0]);
      assert.deepEqual(Object.keys(printed), [
        "result_id",
        "download_url",
        "rows",
        "bad_rows",
        "departments",
        "elapsed_sec",
        "bad_row_samples",
      ]);
      assert.equal(printed.bad_row_samples[0].raw, "Bad\u0007Row,2024-01-02,x");
    });
  },
});

Deno.test({
  name: "main refuses an empty or binary file as the page does, unless --force",
  async fn() {
    await withServer(async (address, dir) => {
      const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
      await Deno.writeFile(`${dir}/photo.png`, png);
      await Deno.writeFile(`${dir}/empty.csv`, new Uint8Array());
      for (
        const [name, words] of [
          ["photo.png", "does not look like a CSV file: it contains binary data."],
          ["empty.csv", "is empty. Choose a file with a header and rows."],
        ]
      ) {
        const refused = captureIo(false);
        assert.equal(await main([`${dir}/${name}`, "--addr", address], refused.sink), 1);
        assert.equal(
          refused.io.stderr,
          `error: “${dir}/${name}” ${words} Pass --force to send it anyway\n`,
        );
        const forced = captureIo(false);
        const code = await main([`${dir}/${name}`, "--addr", address, "--force"], forced.sink);
        assert.equal(code, 0, forced.io.stderr);
        assert.equal(JSON.parse(forced.io.stdout[0]).departments, 0);
      }
    });
  },
});

Deno.test("upload.ts and aggregate.ts --help exit 0 with every option and at least two examples", async () => {
  for (
    const [script, options] of [
      [UPLOAD, ["--addr", "--out", "--no-compress", "--chunked", "--json", "--force", "--help"]],
      [AGGREGATE, ["--out", "--threads", "--json", "--force", "--help"]],
    ] as const
  ) {
    const help = await runDeno(["run", "-A", script, "--help"]);
    assert.equal(help.code, 0);
    const text = help.stdout;
    assert.match(text, /^Usage: deno task (upload|aggregate) /);
    for (const option of options) assert.ok(text.includes(option), `${script}: ${option}`);
    const examples = text.split("Examples:\n")[1]?.trimEnd().split("\n") ?? [];
    // One file, then more: several files became an example of their own.
    assert.ok(examples.length >= 2, text);
    assert.equal(help.stderr, "");
  }
});

Deno.test("upload.ts and aggregate.ts word the same failures the same way", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "cli_words_test_" });
  try {
    await Deno.writeFile(`${dir}/empty.csv`, new Uint8Array());
    await Deno.writeFile(`${dir}/locked.csv`, new TextEncoder().encode("a,b\n"), { mode: 0 });
    const cases = [
      {
        name: "missing file",
        path: `${dir}/missing.csv`,
        words: /^error: Cannot read .*: no such file$/,
      },
      { name: "a directory", path: dir, words: /^error: Cannot read .*: not a regular file$/ },
      { name: "an empty file", path: `${dir}/empty.csv`, words: /is empty\. Choose a file/ },
    ];
    if (Deno.uid() !== 0) {
      cases.push({
        name: "unreadable",
        path: `${dir}/locked.csv`,
        words: /^error: Cannot read .*: permission denied$/,
      });
    }
    for (const { name, path, words } of cases) {
      await t.step(name, async () => {
        const said = [];
        for (const script of [UPLOAD, AGGREGATE]) {
          const run = await runDeno(["run", "-A", script, path]);
          assert.equal(run.code, 1);
          said.push(run.stderr.trimEnd());
        }
        assert.match(said[0], words);
        // The same, but for the verb in the --force hint.
        assert.equal(said[1].replace("aggregate it", "send it"), said[0]);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "main uploads several files into one result, over the stream and chunked",
  async fn(t) {
    await withServer(async (address, dir) => {
      const paths: string[] = [];
      for (const file of THREE_FILES) {
        paths.push(`${dir}/${file.name}`);
        await Deno.writeFile(`${dir}/${file.name}`, file.bytes);
      }
      const expected = await expectedResult(THREE_FILES);
      for (const flags of [[], ["--chunked"], ["--chunked", "--no-compress"]]) {
        await t.step(flags.join(" ") || "stream", async () => {
          const { io, sink } = captureIo(false);
          const out = `${dir}/result.csv`;
          const code = await main([...paths, "--addr", address, "--out", out, ...flags], sink);
          assert.equal(code, 0, io.stderr);
          const printed = JSON.parse(io.stdout[0]);
          assert.equal(printed.rows, expected.rows);
          assert.equal(printed.bad_rows, expected.badRows);
          assert.deepEqual(
            printed.files,
            expected.files.map(({ name, rows, badRows, departments }) => ({
              name,
              rows,
              bad_rows: badRows,
              departments,
            })),
          );
          assert.deepEqual(
            printed.bad_row_samples,
            expected.badRowSamples.map(({ line, reason, raw, file, fileIndex }) => ({
              line,
              reason,
              raw,
              file,
              file_index: fileIndex,
            })),
          );
          assert.equal(await Deno.readTextFile(out), expected.csv);
        });
      }
      await t.step("the terminal summary lists each file and each bad row's file", async () => {
        const { io, sink } = captureIo(true);
        sink.stdoutIsTerminal = true;
        assert.equal(await main([...paths, "--addr", address], sink), 0, io.stderr);
        const lines = io.stdout[0].split("\n");
        assert.equal(lines[0], `Uploaded ${paths.join(", ")}: 10 rows (4 bad rows), 3 departments`);
        const files = lines.indexOf("Files:");
        assert.deepEqual(lines.slice(files + 1, files + 4), [
          "  north.csv     4 rows (2 bad rows), 2 departments",
          "  south.csv.gz  3 rows (1 bad row), 2 departments",
          "  west.csv      3 rows (1 bad row), 2 departments",
        ]);
        assert.match(lines[files + 5], /^ {2}north\.csv line 4: /);
        assert.match(lines[files + 7], /^ {2}south\.csv\.gz line 3: /);
        assert.match(lines[files + 8], /^ {2}west\.csv line 3: /);
        // The bar names the file being sent.
        assert.match(io.stderr, /west\.csv \(3\/3\)/);
      });
      await t.step("a corrupt gzip in the second file fails naming it", async () => {
        const broken = `${dir}/${CORRUPT_SECOND[1].name}`;
        await Deno.writeFile(broken, CORRUPT_SECOND[1].bytes);
        for (const flags of [[], ["--chunked"]]) {
          const { io, sink } = captureIo(false);
          const code = await main([paths[0], broken, paths[2], "--addr", address, ...flags], sink);
          assert.equal(code, 1);
          assert.match(io.stderr, /^error: .*broken\.csv\.gz.* \(INVALID_ARGUMENT\)\n$/);
        }
      });
    });
  },
});
