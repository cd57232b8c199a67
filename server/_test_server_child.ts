/**
 * A whole server (`server/main.ts`, or a test entry that starts it differently) in a child
 * process on loopback with fresh storage, for tests that must watch it from outside: its memory in
 * `/proc/<pid>/status`, or an abort seen as its exit rather than the test runner's death.
 *
 * @module
 */

import { loopbackEnv } from "./_test_loopback_env.ts";

const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"];

/** Options of {@linkcode startServerChild}. */
export interface ServerChildOptions {
  /** More environment variables, over {@linkcode loopbackEnv}'s. @default {{}} */
  env?: Record<string, string>;
  /** Prefix of the temporary storage folder's name. @default {"server_child_"} */
  storagePrefix?: string;
}

/** A running server child; disposing it kills it if it still runs and removes its storage. */
export interface ServerChild extends AsyncDisposable {
  readonly pid: number;
  /** The port its gRPC listener printed. */
  readonly grpcPort: number;
  /** Resolves when it exits. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Whether it has exited. */
  readonly exited: boolean;
  /** Everything it wrote on stderr, once it has exited. */
  readonly stderr: Promise<string>;
  /** Sends `signal` (SIGTERM: a clean stop). */
  kill(signal?: Deno.Signal): void;
}

/** Starts `entry` and resolves once its gRPC listener has printed the port it bound. */
export async function startServerChild(
  entry: string,
  options: ServerChildOptions = {},
): Promise<ServerChild> {
  const storageDir = await Deno.makeTempDir({ prefix: options.storagePrefix ?? "server_child_" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, entry],
    env: { ...loopbackEnv(storageDir), ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stderr = new Response(child.stderr).text();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const dispose = async () => {
    if (!exited) child.kill("SIGKILL");
    await status;
    await stdout.cancel().catch(() => {});
    await stderr.catch(() => "");
    await Deno.remove(storageDir, { recursive: true });
  };
  let output = "";
  let port = 0;
  try {
    while (port === 0) {
      const { value, done } = await stdout.read();
      if (done) throw new Error(`The server exited before listening:\n${output}\n${await stderr}`);
      output += value;
      port = Number(/\[gRPC\] Listening on [^\n]*:(\d+)\n/.exec(output)?.[1] ?? 0);
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  // Keep reading its output so that it never blocks on a full pipe.
  (async () => {
    while (!(await stdout.read().catch(() => ({ done: true }))).done) { /* discard */ }
  })();
  return {
    pid: child.pid,
    grpcPort: port,
    status,
    get exited() {
      return exited;
    },
    stderr,
    kill: (signal = "SIGTERM") => child.kill(signal),
    [Symbol.asyncDispose]: dispose,
  };
}
