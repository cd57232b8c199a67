/**
 * The server as users run it (`deno task start`'s flags, `server/main.ts`), in a child process on
 * loopback with fresh storage, so its memory can be read from `/proc/<pid>/status` apart from the
 * client's. Used by the hostile-input tests and `bench/hostile_bench.ts`.
 *
 * @example
 * ```ts
 * import { startServerProcess } from "./_test_server_process.ts";
 * await using server = await startServerProcess({ MAX_UPLOAD_BYTES: "1048576" });
 * server.resetPeak();
 * // ... upload to server.grpcAddress ...
 * const { peakBytes } = server.memory();
 * if (!(peakBytes > 0)) throw new Error(`peak ${peakBytes} bytes`);
 * ```
 *
 * @module
 */

import { loopbackEnv } from "./_test_loopback_env.ts";
import { eventually } from "./_test_eventually.ts";

const MAIN = new URL("./main.ts", import.meta.url);
const DENO_JSON = new URL("../deno.json", import.meta.url);

/** Resident memory of a process, from `/proc/<pid>/status`. */
export interface ProcessMemory {
  /** `VmRSS`: resident now. */
  rssBytes: number;
  /** `VmHWM`: the highest resident size since start or the last {@linkcode ServerProcess.resetPeak}. */
  peakBytes: number;
}

/** A running server child process; disposing it stops it and removes its storage. */
export interface ServerProcess extends AsyncDisposable {
  readonly pid: number;
  /** `127.0.0.1:<port>` of the gRPC server. */
  readonly grpcAddress: string;
  /** `http://127.0.0.1:<port>` of the web UI and gRPC-Web. */
  readonly webUrl: string;
  /** The storage folder (results are in `results/`). */
  readonly storageDir: string;
  /** The server's memory now. */
  memory(): ProcessMemory;
  /** Resets `VmHWM` to the current RSS (Linux `clear_refs`), so the next peak is one case's own. */
  resetPeak(): void;
  /** Everything the server wrote to stdout and stderr so far. */
  output(): string;
}

/** Starts `server/main.ts` with `deno task start`'s flags and `env` on top of loopback defaults. */
export async function startServerProcess(
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const storageDir = await Deno.makeTempDir({ prefix: "hostile_server_" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...await startTaskFlags(), MAIN.pathname],
    env: {
      ...loopbackEnv(storageDir),
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const drain = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) output += text;
  };
  // Both pipes are read to the end, so the server never blocks on a full one.
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exitCode: number | undefined;
  child.status.then((status) => exitCode = status.code);
  const { grpcPort, webPort } = await eventually(
    () => {
      if (exitCode !== undefined) {
        throw new Error(`The server exited (code ${exitCode}) before listening`);
      }
      const grpcPort = Number(/\[gRPC\] Listening on \S*:(\d+)\n/.exec(output)?.[1] ?? 0);
      const webPort = Number(/\[Web\] Serving .* on http:\/\/[^:]+:(\d+)\//.exec(output)?.[1] ?? 0);
      return grpcPort !== 0 && webPort !== 0 && { grpcPort, webPort };
    },
    "the server to listen",
    30_000,
  ).catch((error) => {
    throw new Error(`${error.message}:\n${output}`, { cause: error });
  });
  const statusField = (name: "VmRSS" | "VmHWM") => {
    const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
    const kB = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status)?.[1];
    if (kB === undefined) throw new Error(`No ${name} in /proc/${child.pid}/status`);
    return Number(kB) * 1024;
  };
  return {
    pid: child.pid,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    webUrl: `http://127.0.0.1:${webPort}`,
    storageDir,
    memory: () => ({ rssBytes: statusField("VmRSS"), peakBytes: statusField("VmHWM") }),
    resetPeak() {
      // "5" resets the peak resident set size to the current one (proc(5), Linux 4.0+).
      Deno.writeTextFileSync(`/proc/${child.pid}/clear_refs`, "5");
    },
    output: () => output,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
      await drained;
      await Deno.remove(storageDir, { recursive: true });
    },
  };
}

/** The `deno run` flags of `deno task start`, so the server runs with the memory flags users get. */
async function startTaskFlags(): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(DENO_JSON)).tasks as Record<string, string>;
  const match = /deno run ((?:--?\S+ )*)server\/main\.ts/.exec(tasks.start ?? "");
  if (!match) throw new Error(`Cannot find "deno run ... server/main.ts" in the start task`);
  return match[1].trim().split(/\s+/);
}
