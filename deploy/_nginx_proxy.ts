/**
 * Runs nginx with `deploy/nginx/nginx.conf.template` (the stand-in for envoy.yaml) in front of
 * replicas, as an unprivileged process on loopback: its own prefix and temp folder, `daemon off`,
 * pid and error log in that folder. For the multi-replica test and `deno task bench scale`.
 *
 * @module
 */

import type { ReplicaPorts } from "./_replica_process.ts";

const TEMPLATE = new URL("./nginx/nginx.conf.template", import.meta.url);
const LOCATIONS = new URL("./nginx/sales_locations.conf", import.meta.url).pathname;

/** Where nginx is looked for, in order: `NGINX`, then Debian's path, then `PATH`. */
export async function findNginx(): Promise<string | undefined> {
  const candidates = [Deno.env.get("NGINX"), "/usr/sbin/nginx", "/usr/bin/nginx"];
  for (const path of candidates) {
    if (path && await Deno.stat(path).then((info) => info.isFile, () => false)) return path;
  }
  const which = await new Deno.Command("sh", {
    args: ["-c", "command -v nginx"],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  const found = which?.success ? new TextDecoder().decode(which.stdout).trim() : "";
  return found === "" ? undefined : found;
}

/** A running nginx. */
export interface NginxProxy {
  /** Port of the cleartext HTTP/2 listener (native gRPC). */
  readonly h2Port: number;
  /** Port of the HTTP/1.1 listener (gRPC-Web, the page, /results/). */
  readonly h1Port: number;
  /** The rendered configuration. */
  readonly config: string;
  /** nginx's error log so far. */
  errorLog(): Promise<string>;
  /** Stops nginx (SIGQUIT: graceful) and removes its folder. */
  stop(): Promise<void>;
}

/** A port free right now on 127.0.0.1 (nginx needs a number, not 0). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** The configuration for `replicas`, with nginx's files under `tempDir`. */
export async function renderNginxConfig(
  replicas: readonly ReplicaPorts[],
  ports: { h2: number; h1: number },
  tempDir: string,
): Promise<string> {
  const servers = (port: (replica: ReplicaPorts) => number) =>
    replicas.map((replica) =>
      // A failed replica is skipped for a second only: a restarted one is back at once.
      `    server 127.0.0.1:${port(replica)} max_fails=1 fail_timeout=1s;`
    ).join("\n");
  return (await Deno.readTextFile(TEMPLATE))
    .replaceAll("@@TEMP@@", tempDir)
    .replaceAll("@@HOST@@", "127.0.0.1")
    .replaceAll("@@H2_PORT@@", String(ports.h2))
    .replaceAll("@@H1_PORT@@", String(ports.h1))
    .replaceAll("@@LOCATIONS@@", LOCATIONS)
    .replaceAll("@@GRPC_SERVERS@@", servers((replica) => replica.grpc))
    .replaceAll("@@WEB_SERVERS@@", servers((replica) => replica.web))
    .replaceAll("@@RESULT_SERVERS@@", servers((replica) => replica.http));
}

/** Starts nginx in front of `replicas`; resolves once both listeners accept connections. */
export async function startNginxProxy(
  nginx: string,
  replicas: readonly ReplicaPorts[],
): Promise<NginxProxy> {
  const tempDir = await Deno.makeTempDir({ prefix: "sales_nginx_" });
  const ports = { h2: freePort(), h1: freePort() };
  const config = await renderNginxConfig(replicas, ports, tempDir);
  const configPath = `${tempDir}/nginx.conf`;
  await Deno.writeTextFile(configPath, config);
  const errorLogPath = `${tempDir}/error.log`;
  const child = new Deno.Command(nginx, {
    // -e: the early error log too, or nginx tries /var/log/nginx before reading the config.
    args: ["-p", tempDir, "-c", configPath, "-e", errorLogPath],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((value) => {
    exited = true;
    return value;
  });
  const errorLog = () => Deno.readTextFile(errorLogPath).catch(() => "");
  const deadline = Date.now() + 10_000;
  for (const port of [ports.h2, ports.h1]) {
    for (;;) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
      if (conn !== undefined) {
        conn.close();
        break;
      }
      if (exited || Date.now() > deadline) {
        if (!exited) child.kill("SIGKILL");
        await status;
        const log = `${await stderr}${await errorLog()}`;
        await Deno.remove(tempDir, { recursive: true });
        throw new Error(`nginx did not start:\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return {
    h2Port: ports.h2,
    h1Port: ports.h1,
    config,
    errorLog,
    async stop() {
      if (!exited) child.kill("SIGQUIT");
      const timer = setTimeout(() => !exited && child.kill("SIGKILL"), 5000);
      await status;
      clearTimeout(timer);
      await stderr;
      await Deno.remove(tempDir, { recursive: true });
    },
  };
}
