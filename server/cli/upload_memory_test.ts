import assert from "node:assert/strict";
import { loopbackEnv } from "../_test_loopback_env.ts";
import { eventually } from "../_test_eventually.ts";

/** How far `deno task upload` may read ahead of a stalled server. */
const STALL_READ_LIMIT = 64 * 1024 * 1024;
/** Client peak RSS allowed at any file size. */
const CLIENT_RSS_LIMIT = 150e6;
const ROOT = new URL("../../", import.meta.url);
const UPLOAD = new URL("./upload.ts", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The `deno run` flags of a task in deno.json, so children run as users run them. */
async function taskFlags(task: string, script: string): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks;
  const match = new RegExp(`deno run ((?:--?\\S+ )*)${script.replaceAll(".", "\\.")}`).exec(
    tasks[task],
  );
  if (!match) throw new Error(`Cannot find the flags of the ${task} task`);
  return match[1].trim().split(/\s+/);
}

/**
 * A CSV of `blocks` MiB whose rows have random hex names, so that gzip shrinks it only about
 * twofold and the compressed run reads ahead about as far as the plain one.
 */
async function writeCsv(path: string, blocks: number): Promise<number> {
  const rows: string[] = [];
  const random = new Uint32Array(1);
  let length = 0;
  while (length < 1024 * 1024 - 64) {
    crypto.getRandomValues(random);
    const row = `D${random[0].toString(16).padStart(8, "0")},2024-01-02,${random[0] % 1000}\n`;
    rows.push(row);
    length += row.length;
  }
  const block = new TextEncoder().encode(rows.join(""));
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let i = 0; i < blocks; i++) {
    for (let at = 0; at < block.length;) at += await file.write(block.subarray(at));
  }
  return rows.length * blocks;
}

/** How far process `pid` has read `path`: the offset of its descriptor (procfs `fdinfo`). */
function readOffset(pid: number, path: string): number | undefined {
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      let target: string;
      try {
        target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
      } catch {
        continue;
      }
      if (target !== path) continue;
      const info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${entry.name}`);
      return Number(/^pos:\s+(\d+)/m.exec(info)?.[1]);
    }
  } catch {
    // The process is gone or has not opened the file yet.
  }
  return undefined;
}

function statusKb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
}

Deno.test({
  name: "upload.ts stops reading within 64 MiB while the server is stalled, then finishes",
  // Linux only: it stops the server with SIGSTOP and watches the client through /proc.
  ignore: Deno.build.os !== "linux",
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "upload_stall_test_" });
    const path = await Deno.realPath(dir) + "/stall.csv";
    const rows = await writeCsv(path, 160);
    const size = (await Deno.stat(path)).size;
    const server = new Deno.Command(Deno.execPath(), {
      args: ["run", ...await taskFlags("start", "server/main.ts"), MAIN],
      env: loopbackEnv(`${dir}/storage`),
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let stopped = false;
    try {
      let output = "";
      let port = 0;
      while (port === 0) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`The server exited before listening:\n${output}`);
        output += value;
        port = Number(/\[gRPC\] Listening on [^\n]*:(\d+)\n/.exec(output)?.[1] ?? 0);
      }
      // Keep reading its output so it never blocks on a full pipe.
      (async () => {
        while (!(await lines.read()).done) { /* discard */ }
      })();
      const uploadFlags = await taskFlags("upload", "server/cli/upload.ts");

      for (const compress of [false, true]) {
        await t.step(compress ? "compressed" : "--no-compress", async () => {
          const client = new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              ...uploadFlags,
              UPLOAD,
              path,
              "--addr",
              `127.0.0.1:${port}`,
              ...(compress ? [] : ["--no-compress"]),
            ],
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          const result = client.output();
          const pid = client.pid;
          // Stall the server once the upload is well under way.
          const atStop = await eventually(
            () => {
              const offset = readOffset(pid, path);
              return offset !== undefined && offset >= 16 * 1024 * 1024 ? offset : undefined;
            },
            "the upload to start",
            30_000,
          );
          Deno.kill(server.pid, "SIGSTOP");
          stopped = true;
          // Reading has stopped once the offset holds still for half a second. A file no
          // longer open was read to its end.
          let last = readOffset(pid, path) ?? size;
          let since = Date.now();
          const held = await eventually(
            () => {
              const offset = readOffset(pid, path) ?? size;
              if (offset !== last) [last, since] = [offset, Date.now()];
              return Date.now() - since >= 500 ? offset : undefined;
            },
            "the client to stop reading",
            20_000,
          );
          const rssMb = statusKb(pid, "VmRSS") / 1e3;
          Deno.kill(server.pid, "SIGCONT");
          stopped = false;
          const { code, stdout, stderr } = await result;
          assert.equal(code, 0, new TextDecoder().decode(stderr));
          assert.equal(JSON.parse(new TextDecoder().decode(stdout)).rows, rows);
          const readAhead = held - atStop;
          console.log(
            `  stalled at ${(atStop / 2 ** 20).toFixed(1)} MiB of ${(size / 2 ** 20).toFixed(0)}` +
              ` MiB, read ${(readAhead / 2 ** 20).toFixed(1)} MiB more, client RSS ${
                rssMb.toFixed(0)
              } MB`,
          );
          assert.ok(readAhead <= STALL_READ_LIMIT, `read ${readAhead} bytes after the stall`);
          assert.ok(held < size, "the whole file was read while the server was stalled");
          assert.ok(rssMb * 1e6 <= CLIENT_RSS_LIMIT, `client RSS ${rssMb} MB while stalled`);
        });
      }
    } finally {
      if (stopped) Deno.kill(server.pid, "SIGCONT");
      server.kill("SIGTERM");
      await server.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
