import assert from "node:assert/strict";
import { type Config, loadConfig } from "../server/config.ts";
import {
  asArray,
  asObject,
  asString,
  composeDurationSeconds,
  durationSeconds,
  parseDockerEnv,
  parseDockerfile,
  parsePorts,
  permissionFlags,
  readDenoTasks,
  readRepoFile,
  readYaml,
  type YamlObject,
} from "./_deploy_files.ts";
import { ClientAddresses } from "../server/service/client_address.ts";
import { clusterNamed, readEnvoyParts, upstreamFor } from "./_envoy_config.ts";

/** The compose file's services, and the sales service's environment as a validated config. */
async function readCompose() {
  const compose = await readYaml("compose.yaml");
  const services = asObject(compose.services, "services");
  const sales = asObject(services.sales, "services.sales");
  const envoy = asObject(services.envoy, "services.envoy");
  const environment = asObject(sales.environment, "sales.environment");
  const env = Object.fromEntries(
    Object.entries(environment).map(([key, value]) => [key, String(value)]),
  );
  return { compose, services, sales, envoy, env, config: loadConfig(env) };
}

/** The host port a service publishes `containerPort` on. */
function publishedPort(service: YamlObject, containerPort: number, what: string): number {
  const mapping = parsePorts(service.ports, `${what}.ports`).find((port) =>
    port.container === containerPort
  );
  assert.ok(mapping, `${what} does not publish container port ${containerPort}`);
  return mapping.host;
}

async function readDockerfile() {
  return parseDockerfile(await readRepoFile("Dockerfile"));
}

/** The sources of a shell-form COPY: every word but the flags and the destination. */
function copySources(args: string): string[] {
  return args.split(/\s+/).filter((word) => !word.startsWith("--")).slice(0, -1);
}

/** The exec-form (JSON array) arguments of a Dockerfile instruction such as CMD. */
function execForm(args: string, what: string): string[] {
  const parsed = JSON.parse(args);
  assert.ok(Array.isArray(parsed) && parsed.every((arg) => typeof arg === "string"), what);
  return parsed;
}

Deno.test("compose.yaml runs three replicas that publish no ports, reached through Envoy only", async () => {
  const { services, sales, envoy, env, config } = await readCompose();
  assert.equal(asObject(sales.deploy, "sales.deploy").replicas, 3);
  // Replicas cannot share a host port, and Envoy is the one entry point.
  assert.equal(sales.ports, undefined, "sales publishes ports");
  const publishing = Object.entries(services).filter(([, service]) =>
    asObject(service, "service").ports !== undefined
  ).map(([name]) => name);
  assert.deepEqual(publishing, ["envoy"]);
  // Listening on every interface inside the container, or Envoy reaches nothing.
  for (const host of [config.grpcHost, config.httpHost, config.webHost]) {
    assert.equal(host, "0.0.0.0");
  }
  // Download links and the page's gRPC-Web both point at Envoy's published listener.
  const { listenerAddress } = await readEnvoyParts();
  const envoyPort = publishedPort(envoy, listenerAddress.port, "envoy");
  for (const url of [config.publicResultsUrl!, config.grpcWebUrl]) {
    const parsed = new URL(url);
    assert.equal(parsed.hostname, "localhost");
    assert.equal(Number(parsed.port), envoyPort, url);
  }
  // Each replica takes its default REPLICA_ID (container host name and pid): one set here would
  // be shared by all three, and their start-up would delete each other's writes in progress.
  assert.equal(env.REPLICA_ID, undefined);
});

Deno.test("compose.yaml environment would be refused by loadConfig if it were broken", () => {
  // The check above is only as good as loadConfig's validation; show it bites.
  assert.throws(() => loadConfig({ GRPC_WEB_URL: "localhost:8081" }), /GRPC_WEB_URL/);
  assert.throws(() => loadConfig({ WEB_PORT: "http" }), /WEB_PORT/);
});

Deno.test("compose.yaml sends the page's gRPC-Web to Envoy, which forwards each path to the matching sales port", async () => {
  const { services, envoy, config } = await readCompose();
  const parts = await readEnvoyParts();
  const { listenerAddress, routes } = parts;
  // GRPC_WEB_URL is Envoy's listener as published on the host.
  const grpcWeb = new URL(config.grpcWebUrl);
  assert.equal(grpcWeb.hostname, "localhost");
  assert.equal(Number(grpcWeb.port), publishedPort(envoy, listenerAddress.port, "envoy"));
  assert.equal(grpcWeb.pathname, "/");
  // Envoy's upstreams are the compose service and the ports its environment sets.
  for (
    const [path, port] of [
      ["/sales.v1.SalesService/StartUpload", config.grpcPort],
      ["/results/0123abcd.csv", config.httpPort],
      ["/", config.webPort],
    ] as const
  ) {
    const { endpoints } = upstreamFor(parts, path);
    assert.deepEqual(endpoints, [{ address: "sales", port }], path);
    assert.ok(Object.keys(services).includes(endpoints[0].address));
  }
  // The page is served through Envoy ("/" goes to the web port), so the page and its gRPC-Web
  // endpoint share one origin and need no CORS; download links have that origin too.
  const pageOrigin = `http://localhost:${publishedPort(envoy, listenerAddress.port, "envoy")}`;
  assert.equal(grpcWeb.origin, pageOrigin);
  assert.equal(new URL(config.publicResultsUrl!).origin, pageOrigin);
  assert.ok(routes.length > 0);
});

Deno.test("compose.yaml has the service believe X-Forwarded-For from Envoy's fixed address only", async () => {
  const { compose, sales, envoy, config } = await readCompose();
  const networks = asObject(compose.networks, "networks");
  const [networkName] = Object.keys(networks);
  const subnet = asString(
    asObject(
      asArray(
        asObject(asObject(networks[networkName], networkName).ipam, "ipam").config,
        "config",
      )[0],
      "ipam.config[0]",
    ).subnet,
    "subnet",
  );
  assert.deepEqual(asArray(sales.networks, "sales.networks"), [networkName]);
  const envoyAddress = asString(
    asObject(asObject(envoy.networks, "envoy.networks")[networkName], networkName).ipv4_address,
    "envoy ipv4_address",
  );
  // Envoy's address is in the network, and is not its gateway (x.x.x.1), which the published
  // ports' connections may come from.
  assert.ok(new ClientAddresses([subnet]).isTrusted(envoyAddress), `${envoyAddress} in ${subnet}`);
  const gateway = subnet.replace(/\.0\/\d+$/, ".1");
  // The service's own rule with compose's TRUSTED_PROXIES: through Envoy the client is the address
  // Envoy appended; anyone else sending the header is counted as themselves.
  const clients = new ClientAddresses(config.trustedProxies);
  assert.equal(
    clients.resolve(`${envoyAddress}:41000`, "203.0.113.9, 198.51.100.7"),
    "198.51.100.7",
  );
  assert.equal(clients.resolve(`${gateway}:41000`, "198.51.100.7"), gateway);
  const neighbour = envoyAddress.replace(/\d+$/, (last) => String(Number(last) + 1));
  assert.equal(clients.resolve(neighbour, "198.51.100.7"), neighbour);
  // Envoy itself takes the client from the socket and appends it (envoy_test.ts checks the rest).
  assert.equal((await readEnvoyParts()).hcm.use_remote_address, true);
});

Deno.test("compose.yaml gives Envoy twice the open files its connection limit needs", async () => {
  const { envoy } = await readCompose();
  const { config } = await readEnvoyParts();
  const monitor = asArray(
    asObject(config.overload_manager, "overload_manager").resource_monitors,
    "resource_monitors",
  ).map((entry) => asObject(entry, "monitor")).find((entry) =>
    entry.name === "envoy.resource_monitors.global_downstream_max_connections"
  );
  assert.ok(monitor);
  const limit = Number(
    asObject(monitor.typed_config, "typed_config").max_active_downstream_connections,
  );
  const nofile = asObject(asObject(envoy.ulimits, "envoy.ulimits").nofile, "nofile");
  // Envoy's advice: the connection limit under half the descriptors, which upstreams share.
  assert.ok(limit * 2 <= Number(nofile.soft), `${limit} connections, nofile ${nofile.soft}`);
  assert.ok(Number(nofile.soft) <= Number(nofile.hard));
});

Deno.test("compose.yaml service and Envoy agree on idle connections and streams per connection", async () => {
  const { config } = await readCompose();
  const parts = await readEnvoyParts();
  const options = (name: string) =>
    asObject(
      asObject(clusterNamed(parts, name).typed_extension_protocol_options, "options")[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
      ],
      "HttpProtocolOptions",
    );
  for (const cluster of parts.clusters) {
    // Envoy closes an idle upstream connection before the service would, so it never sends a
    // request into a connection the service is closing.
    const idle = durationSeconds(
      asObject(options(String(cluster.name)).common_http_protocol_options, "common").idle_timeout,
      `${cluster.name} idle_timeout`,
    );
    assert.ok(idle < config.connectionIdleTimeoutSec, `${cluster.name}: ${idle}s`);
  }
  // Envoy opens another connection rather than queue behind the service's stream limit.
  const h2 = asObject(
    asObject(options("sales_grpc").explicit_http_config, "explicit").http2_protocol_options,
    "http2_protocol_options",
  );
  assert.ok(Number(h2.max_concurrent_streams) <= config.maxConcurrentStreams);
});

Deno.test("compose.yaml publishes Envoy's listener but never its admin port", async () => {
  const { envoy } = await readCompose();
  const { listenerAddress, admin } = await readEnvoyParts();
  const containerPorts = parsePorts(envoy.ports, "envoy.ports").map((port) => port.container);
  assert.deepEqual(containerPorts, [listenerAddress.port]);
  assert.ok(!containerPorts.includes(admin.port));
});

Deno.test("compose.yaml runs a pinned Envoy on the repository's envoy.yaml, read-only", async () => {
  const { envoy } = await readCompose();
  const image = asString(envoy.image, "envoy.image");
  assert.match(image, /^envoyproxy\/envoy:v1\.3\d\.\d+$/);
  // The validate command quoted in envoy.yaml uses the same image.
  assert.ok(
    (await readRepoFile("envoy/envoy.yaml")).includes(image),
    "envoy.yaml names another image",
  );
  const mounts = asArray(envoy.volumes, "envoy.volumes").map(String);
  const mount = mounts.find((entry) => entry.startsWith("./envoy/envoy.yaml:"));
  assert.ok(mount, `no envoy.yaml mount in ${mounts}`);
  const [, target, mode] = mount.split(":");
  assert.equal(mode, "ro");
  const command = asArray(envoy.command, "envoy.command").map(String);
  assert.equal(command[command.indexOf("-c") + 1], target);
});

Deno.test("compose.yaml starts Envoy only once the service is healthy, and restarts both", async () => {
  const { services, envoy } = await readCompose();
  const dependsOn = asObject(envoy.depends_on, "envoy.depends_on");
  assert.equal(asObject(dependsOn.sales, "depends_on.sales").condition, "service_healthy");
  for (const [name, service] of Object.entries(services)) {
    const restart = asObject(service, name).restart;
    assert.ok(["always", "unless-stopped", "on-failure"].includes(String(restart)), name);
    const healthcheck = asObject(asObject(service, name).healthcheck, `${name}.healthcheck`);
    assert.equal(asArray(healthcheck.test, `${name}.healthcheck.test`)[0], "CMD");
    for (const key of ["interval", "timeout", "start_period"]) {
      assert.ok(composeDurationSeconds(healthcheck[key], `${name}.${key}`) > 0);
    }
  }
});

Deno.test("compose.yaml keeps results on a named volume at STORAGE_DIR, as the Dockerfile declares", async () => {
  const { compose, sales, config } = await readCompose();
  const mounts = asArray(sales.volumes, "sales.volumes").map(String);
  const [volume, target] = mounts[0].split(":");
  assert.equal(target, config.storageDir);
  assert.ok(Object.keys(asObject(compose.volumes, "volumes")).includes(volume));
  const dockerfile = await readDockerfile();
  const declared = dockerfile.filter((i) => i.keyword === "VOLUME").flatMap((i) =>
    i.args.startsWith("[") ? execForm(i.args, "VOLUME") : i.args.split(/\s+/)
  );
  assert.ok(declared.includes(config.storageDir), `VOLUME ${declared}`);
  const env = Object.assign(
    {},
    ...dockerfile.filter((i) => i.keyword === "ENV").map((i) => parseDockerEnv(i.args)),
  );
  assert.equal(env.STORAGE_DIR, config.storageDir);
});

Deno.test("compose.yaml gives the service time to finish calls in flight after SIGTERM", async () => {
  const { sales } = await readCompose();
  // server/main.ts: shutdown() waits up to 10 s for calls in flight.
  assert.ok(composeDurationSeconds(sales.stop_grace_period, "stop_grace_period") > 10);
});

Deno.test("Dockerfile builds on Deno 2.9.3, the version CI installs", async () => {
  const dockerfile = await readDockerfile();
  const from = dockerfile.filter((i) => i.keyword === "FROM");
  assert.equal(from.length, 1);
  const ciVersion = /^DENO_VERSION=(\S+)$/m.exec(await readRepoFile(".ci/run"))?.[1];
  assert.equal(ciVersion, "2.9.3");
  assert.match(
    from[0].args,
    new RegExp(`^denoland/deno:(debian-)?${ciVersion!.replaceAll(".", "\\.")}$`),
  );
});

Deno.test("Dockerfile caches dependencies before copying the source, and builds the bundle", async () => {
  const dockerfile = await readDockerfile();
  const index = (test: (i: { keyword: string; args: string }) => boolean, what: string) => {
    const found = dockerfile.findIndex(test);
    assert.ok(found >= 0, `Dockerfile has no ${what}`);
    return found;
  };
  const copyManifest = index(
    (i) =>
      i.keyword === "COPY" && copySources(i.args).includes("deno.json") &&
      !copySources(i.args).includes("."),
    "COPY of deno.json without the source",
  );
  const install = index(
    (i) => i.keyword === "RUN" && /\bdeno (install|cache)\b/.test(i.args),
    "RUN deno install",
  );
  const copySource = index(
    (i) => i.keyword === "COPY" && copySources(i.args).includes("."),
    "COPY . .",
  );
  const build = index(
    (i) => i.keyword === "RUN" && /\bdeno task build\b/.test(i.args),
    "RUN deno task build",
  );
  assert.ok(copyManifest < install && install < copySource && copySource < build);
  // The lock file travels with the manifest, so the cached layer matches it.
  assert.ok(copySources(dockerfile[copyManifest].args).some((src) => src.startsWith("deno.lock")));
});

Deno.test("Dockerfile runs the service as the non-root deno user", async () => {
  const dockerfile = await readDockerfile();
  const cmd = dockerfile.findLastIndex((i) => i.keyword === "CMD");
  const users = dockerfile.slice(0, cmd).filter((i) => i.keyword === "USER");
  assert.ok(users.length > 0);
  assert.equal(users.at(-1)!.args, "deno");
});

Deno.test("Dockerfile exposes the configured ports and starts server/main.ts with no more permissions than deno task start", async () => {
  const dockerfile = await readDockerfile();
  const defaults: Config = loadConfig({});
  const exposed = dockerfile.filter((i) => i.keyword === "EXPOSE").flatMap((i) =>
    i.args.split(/\s+/)
  ).map(Number);
  assert.deepEqual(exposed.sort(), [defaults.grpcPort, defaults.httpPort, defaults.webPort].sort());
  const cmd = execForm(dockerfile.findLast((i) => i.keyword === "CMD")!.args, "CMD");
  assert.deepEqual(cmd.slice(0, 2), ["deno", "run"]);
  assert.equal(cmd.at(-1), "server/main.ts");
  const granted = permissionFlags(cmd);
  assert.ok(!granted.includes("-A") && !granted.includes("--allow-all"));
  const startFlags = permissionFlags((await readDenoTasks()).start.split(/\s+/));
  for (const flag of granted) {
    const name = flag.split("=")[0];
    assert.ok(startFlags.some((start) => start === name || start.startsWith(`${name}=`)), flag);
  }
  // Writes are limited to the results folder.
  const { config } = await readCompose();
  assert.ok(granted.includes(`--allow-write=${config.storageDir}`), granted.join(" "));
});

Deno.test("Dockerfile has the service listen on every interface, where the service defaults to loopback", async () => {
  const dockerfile = await readDockerfile();
  const env = Object.assign(
    {},
    ...dockerfile.filter((i) => i.keyword === "ENV").map((i) => parseDockerEnv(i.args)),
  );
  const inImage = loadConfig(env);
  const defaults = loadConfig({});
  for (const key of ["grpcHost", "httpHost", "webHost"] as const) {
    assert.equal(defaults[key], "127.0.0.1", `default ${key}`);
    assert.equal(inImage[key], "0.0.0.0", `image ${key}`);
  }
});

Deno.test(".dockerignore keeps caches, results and build output out of the image context", async () => {
  const ignored = (await readRepoFile(".dockerignore")).split("\n").map((line) => line.trim());
  for (
    const entry of [".git", ".cache", "storage", "static/build", "test-artifacts", "dist", "deploy"]
  ) {
    assert.ok(ignored.includes(entry), entry);
  }
});

/** Starts a TCP listener (stand-in gRPC port) and an HTTP server answering `status`. */
function startFakeService(status: () => number) {
  const grpcListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of grpcListener) conn.close();
  })();
  let grpcOpen = true;
  const web = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("page", { status: status() }),
  );
  const closeGrpc = async () => {
    if (grpcOpen) grpcListener.close();
    grpcOpen = false;
    await accepting.catch(() => {});
  };
  return {
    env: { GRPC_PORT: String(grpcListener.addr.port), WEB_PORT: String(web.addr.port) },
    closeGrpc,
    async close() {
      await closeGrpc();
      await web.shutdown();
    },
  };
}

async function runProbe(argv: string[], env: Record<string, string>): Promise<number> {
  const [command, ...args] = argv;
  const { code } = await new Deno.Command(command === "deno" ? Deno.execPath() : command, {
    args,
    env,
    stdout: "null",
    stderr: "null",
  }).output();
  return code;
}

Deno.test("compose.yaml and Dockerfile sales health checks pass only when gRPC and the page answer", async () => {
  const { sales } = await readCompose();
  const composeProbe = asArray(asObject(sales.healthcheck, "healthcheck").test, "test").map(String)
    .slice(1);
  const healthcheck = (await readDockerfile()).find((i) => i.keyword === "HEALTHCHECK")!;
  const dockerProbe = execForm(healthcheck.args.replace(/^.*?\bCMD\s+/, ""), "HEALTHCHECK CMD");
  let status = 200;
  const fake = startFakeService(() => status);
  try {
    for (const probe of [composeProbe, dockerProbe]) {
      status = 200;
      assert.equal(await runProbe(probe, fake.env), 0, `healthy: ${probe.join(" ")}`);
      status = 503;
      assert.notEqual(await runProbe(probe, fake.env), 0, "page failing");
    }
    status = 200;
    await fake.closeGrpc();
    for (const probe of [composeProbe, dockerProbe]) {
      assert.notEqual(await runProbe(probe, fake.env), 0, "gRPC port closed");
    }
  } finally {
    await fake.close();
  }
});

Deno.test("compose.yaml Envoy health check asks the loopback admin port for /ready", async () => {
  const { envoy } = await readCompose();
  const { admin } = await readEnvoyParts();
  const probe = asArray(asObject(envoy.healthcheck, "healthcheck").test, "test").map(String).slice(
    1,
  );
  assert.deepEqual(probe.slice(0, 2), ["bash", "-c"]);
  const target = `/dev/tcp/${admin.address}/${admin.port}`;
  assert.ok(probe[2].includes(target) && probe[2].includes("GET /ready "), probe[2]);
  // Run it against a stand-in admin server on a free port: 200 LIVE passes, 503 fails.
  let ready = true;
  const fakeAdmin = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new URL(request.url).pathname === "/ready" && ready
        ? new Response("LIVE\n")
        : new Response("PRE_INITIALIZING\n", { status: 503 }),
  );
  try {
    const script = probe[2].replace(target, `/dev/tcp/127.0.0.1/${fakeAdmin.addr.port}`);
    assert.equal(await runProbe(["bash", "-c", script], {}), 0);
    ready = false;
    assert.notEqual(await runProbe(["bash", "-c", script], {}), 0);
  } finally {
    await fakeAdmin.shutdown();
  }
});
