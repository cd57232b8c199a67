/**
 * One replica of the service as a child process (`deno run server/main.ts`), on loopback, for the
 * multi-replica test and `deno task bench scale`: started with its own `REPLICA_ID` on a shared
 * `STORAGE_DIR`, its bound ports read from its start-up lines, stopped or killed by its pid.
 *
 * @module
 */

const MAIN = new URL("../server/main.ts", import.meta.url).pathname;
const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"];

/** The ports a replica listens on. */
export interface ReplicaPorts {
  grpc: number;
  http: number;
  web: number;
}

/** Options of {@linkcode startReplica}. */
export interface ReplicaOptions {
  /** `REPLICA_ID`. */
  replicaId: string;
  /** `STORAGE_DIR`, shared by the replicas. */
  storageDir: string;
  /** Ports to bind; 0 picks free ones (a restart passes the old ones). @default {all 0} */
  ports?: ReplicaPorts;
  /** More environment variables. @default {{}} */
  env?: Record<string, string>;
  /** Milliseconds to wait for the start-up lines. @default {30000} */
  timeoutMs?: number;
}

/** A running replica. */
export interface ReplicaProcess {
  readonly replicaId: string;
  readonly ports: ReplicaPorts;
  readonly pid: number;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Resolves when it exits. */
  readonly status: Promise<Deno.CommandStatus>;
}

/** Starts `server/main.ts` and resolves once all three listeners have printed their ports. */
export async function startReplica(options: ReplicaOptions): Promise<ReplicaProcess> {
  const ports = options.ports ?? { grpc: 0, http: 0, web: 0 };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--max-semi-space-size=1", ...PERMISSIONS, MAIN],
    env: {
      GRPC_HOST: "127.0.0.1",
      HTTP_HOST: "127.0.0.1",
      WEB_HOST: "127.0.0.1",
      GRPC_PORT: String(ports.grpc),
      HTTP_PORT: String(ports.http),
      WEB_PORT: String(ports.web),
      STORAGE_DIR: options.storageDir,
      REPLICA_ID: options.replicaId,
      ...options.env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let changed: () => void = () => {};
  const pump = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
    const decoder = new TextDecoder();
    for await (const bytes of stream) {
      output += decoder.decode(bytes, { stream: true });
      changed();
    }
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = pumped.then(() => child.status);
  let exited = false;
  status.then(() => {
    exited = true;
    changed();
  });

  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const port = (pattern: RegExp) => Number(pattern.exec(output)?.[1] ?? NaN);
  for (;;) {
    const bound = {
      grpc: port(/^\[gRPC\] Listening on [^\s]+:(\d+)$/m),
      http: port(/^\[HTTP\] Listening on [^\s]+:(\d+) /m),
      web: port(/^\[Web\] Serving the UI and gRPC-Web on http:\/\/[^\s]+:(\d+)\//m),
    };
    if (Object.values(bound).every((value) => value > 0)) {
      return {
        replicaId: options.replicaId,
        ports: bound,
        pid: child.pid,
        output: () => output,
        status,
        async stop(signal: Deno.Signal = "SIGTERM") {
          if (!exited) {
            try {
              child.kill(signal);
            } catch {
              // Exited meanwhile.
            }
          }
          return await status;
        },
      };
    }
    if (exited || Date.now() > deadline) {
      if (!exited) child.kill("SIGKILL");
      await status;
      throw new Error(`Replica ${options.replicaId} did not start:\n${output}`);
    }
    // Wait for more output, the exit or a tick (poll, never a fixed sleep for the result).
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 100);
      changed = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
