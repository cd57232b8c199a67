import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import {
  appendBlob,
  createGrpcWebSalesClient,
  ROUTING_HEADER as PAGE_ROUTING_HEADER,
} from "../browser/upload_client.ts";
import { ROUTING_HEADER as CLI_ROUTING_HEADER } from "../server/grpc/sales_client.ts";
import { startGrpcServer } from "../server/grpc/grpc_server.ts";
import { SALES_SERVICE_NAME } from "../server/grpc/sales_proto.ts";
import { createFakeSalesService } from "../server/web/_test_fake_sales_service.ts";
import { loadConfig } from "../server/config.ts";
import { asArray, asObject, durationSeconds, readYaml, walkKeys } from "./_deploy_files.ts";
import {
  clusterNamed,
  CORS_FILTER,
  headerList,
  readEnvoyParts,
  routeFor,
  upstreamFor,
} from "./_envoy_config.ts";

const HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/** The edge guide's buffer limit for listeners and clusters. */
const EDGE_BUFFER_BYTES = 32 * 1024;

Deno.test("envoy.yaml uses only Envoy v3 extension types, each named by an @type", async () => {
  const config = await readYaml("envoy/envoy.yaml");
  const types: string[] = [];
  walkKeys(config, (parentPath, key, value) => {
    if (key === "@type") types.push(String(value));
    if (key === "typed_config") {
      assert.equal(typeof asObject(value, key)["@type"], "string", `${parentPath} typed_config`);
    }
    if (parentPath.at(-1) === "typed_per_filter_config") {
      assert.equal(typeof asObject(value, key)["@type"], "string", `per-filter config ${key}`);
    }
  });
  for (const type of types) {
    assert.match(type, /^type\.googleapis\.com\/envoy\.([a-z0-9_]+\.)+v3\.[A-Z][A-Za-z0-9]*$/);
  }
  const expected = [
    "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
    "envoy.extensions.filters.http.cors.v3.CorsPolicy",
    "envoy.extensions.filters.http.cors.v3.Cors",
    "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb",
    "envoy.extensions.filters.http.router.v3.Router",
    HTTP_PROTOCOL_OPTIONS,
  ];
  assert.deepEqual(
    [...new Set(types)].sort(),
    expected.map((name) => `type.googleapis.com/${name}`).sort(),
  );
});

Deno.test("envoy.yaml serves gRPC-Web on 0.0.0.0:8081 through cors, grpc_web and router, in that order", async () => {
  const { listeners, listenerAddress, listener, httpFilters } = await readEnvoyParts();
  assert.equal(listeners.length, 1);
  assert.deepEqual(listenerAddress, { address: "0.0.0.0", port: 8081 });
  const networkFilter = asObject(
    asArray(asObject(asArray(listener.filter_chains, "chains")[0], "chain").filters, "filters")[0],
    "filter",
  );
  assert.equal(networkFilter.name, "envoy.filters.network.http_connection_manager");
  assert.deepEqual(
    httpFilters.map((
      filter,
    ) => [filter.name, asObject(filter.typed_config, "typed_config")["@type"]]),
    [
      ["envoy.filters.http.cors", "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"],
      [
        "envoy.filters.http.grpc_web",
        "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb",
      ],
      [
        "envoy.filters.http.router",
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
      ],
    ],
  );
});

Deno.test("envoy.yaml binds the admin interface to loopback only", async () => {
  const { admin, listenerAddress } = await readEnvoyParts();
  assert.ok(["127.0.0.1", "::1"].includes(admin.address), admin.address);
  assert.notEqual(admin.port, listenerAddress.port);
});

Deno.test("envoy.yaml names each HTTP filter by its current envoy.filters.http name", async () => {
  const { httpFilters } = await readEnvoyParts();
  // The pre-v3 names (envoy.router, envoy.cors, ...) were removed.
  for (const filter of httpFilters) {
    assert.match(String(filter.name), /^envoy\.filters\.http\.[a-z0-9_]+$/);
  }
});

Deno.test("envoy.yaml sends the API to the gRPC port over HTTP/2, /results/ to the result port and the rest to the page", async () => {
  const parts = await readEnvoyParts();
  // The ports the service listens on by default (compose_test.ts checks compose sets the same).
  const { grpcPort, httpPort, webPort } = loadConfig({});
  const api = `/${SALES_SERVICE_NAME}`;
  const cases = [
    { path: `${api}/UploadCSV`, cluster: "sales_grpc", port: grpcPort, http2: true },
    { path: `${api}/AppendUpload`, cluster: "sales_grpc", port: grpcPort, http2: true },
    { path: "/results/0123abcd.csv", cluster: "sales_results", port: httpPort, http2: false },
    { path: "/", cluster: "sales_web", port: webPort, http2: false },
    { path: "/static/build/islands.js", cluster: "sales_web", port: webPort, http2: false },
    // A result's page: its short prefix must not be taken for the result files' `/results/`.
    {
      path: "/r/0123456789abcdef0123456789abcdef",
      cluster: "sales_web",
      port: webPort,
      http2: false,
    },
    // Another service's path is not the API: it goes to the page server, which answers 404.
    { path: "/other.v1.Service/Call", cluster: "sales_web", port: webPort, http2: false },
  ];
  for (const { path, cluster, port, http2 } of cases) {
    const upstream = upstreamFor(parts, path);
    assert.equal(upstream.cluster.name, cluster, path);
    assert.deepEqual(upstream.endpoints, [{ address: "sales", port }], path);
    assert.equal(
      asObject(upstream.cluster.load_assignment, "load_assignment").cluster_name,
      cluster,
    );
    const options = asObject(
      asObject(upstream.cluster.typed_extension_protocol_options, "protocol options")[
        HTTP_PROTOCOL_OPTIONS
      ],
      HTTP_PROTOCOL_OPTIONS,
    );
    const explicit = asObject(options.explicit_http_config, "explicit_http_config");
    // gRPC needs HTTP/2; Deno.serve speaks HTTP/1.1 in cleartext.
    assert.deepEqual(Object.keys(explicit), [
      http2 ? "http2_protocol_options" : "http_protocol_options",
    ]);
  }
  // Every cluster is used by some route.
  const used = new Set(parts.routes.map(({ route }) => asObject(route.route, "route").cluster));
  assert.deepEqual([...used].sort(), parts.clusters.map((cluster) => cluster.name).sort());
});

Deno.test("envoy.yaml health-checks the gRPC cluster with grpc.health.v1 for a service our server reports", async () => {
  const parts = await readEnvoyParts();
  for (const cluster of [clusterNamed(parts, "sales_grpc")]) {
    const checks = asArray(cluster.health_checks, `${cluster.name}.health_checks`);
    assert.equal(checks.length, 1);
    const check = asObject(checks[0], "health_checks[0]");
    const grpcCheck = asObject(check.grpc_health_check, "grpc_health_check");
    assert.ok(["", SALES_SERVICE_NAME].includes(String(grpcCheck.service_name ?? "")));
    // Required by HealthCheck: timeout, interval and both thresholds.
    assert.ok(durationSeconds(check.timeout, "timeout") > 0);
    assert.ok(
      durationSeconds(check.interval, "interval") >= durationSeconds(check.timeout, "timeout"),
    );
    assert.ok(Number(check.unhealthy_threshold) >= 1 && Number(check.healthy_threshold) >= 1);
  }
});

Deno.test({
  name: "envoy.yaml health check gets SERVING from our gRPC server for the service it names",
  async fn() {
    const cluster = clusterNamed(await readEnvoyParts(), "sales_grpc");
    const serviceName = String(
      asObject(
        asObject(asArray(cluster.health_checks, "checks")[0], "check").grpc_health_check,
        "g",
      )
        .service_name ?? "",
    );
    const server = await startGrpcServer(createFakeSalesService().service, {
      host: "127.0.0.1",
      port: 0,
    });
    const Health = grpc.makeGenericClientConstructor(
      healthService as unknown as grpc.ServiceDefinition,
      "Health",
    );
    const client = new Health(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise<{ status: unknown }>((resolve, reject) =>
        // deno-lint-ignore no-explicit-any
        (client as any).Check(
          { service },
          (error: Error | null, response: { status: unknown }) =>
            error ? reject(error) : resolve(response),
        )
      );
    try {
      assert.ok(["SERVING", 1].includes((await check(serviceName)).status as string));
      // The check can fail: an unknown service is NOT_FOUND.
      await assert.rejects(
        check("no.such.Service"),
        (error: grpc.ServiceError) => error.code === 5,
      );
    } finally {
      client.close();
      await server.shutdown(1000);
    }
  },
});

Deno.test("envoy.yaml lets a multi-gigabyte upload run as long as bytes keep moving", async () => {
  const parts = await readEnvoyParts();
  const { hcm } = parts;
  // The whole request body is bounded, but a 10 GiB upload at 1 MB/s fits, and no longer than a
  // day (UPLOAD_MAX_LIFETIME_SEC's default).
  const requestTimeout = durationSeconds(hcm.request_timeout, "request_timeout");
  assert.ok(requestTimeout >= (10 * 2 ** 30) / 1e6, `request_timeout ${requestTimeout}s`);
  assert.ok(
    requestTimeout <= loadConfig({}).uploadMaxLifetimeSec,
    `request_timeout ${requestTimeout}s`,
  );
  // No cap on a whole stream beyond that: max_stream_duration unset.
  assert.equal(hcm.max_stream_duration, undefined);
  const common = asObject(hcm.common_http_protocol_options, "common_http_protocol_options");
  assert.equal(common.max_stream_duration, undefined);
  // Idle streams still end, but never sooner than a minute without a byte.
  const streamIdle = durationSeconds(hcm.stream_idle_timeout, "stream_idle_timeout");
  assert.ok(streamIdle >= 60 && streamIdle <= 300, `stream_idle_timeout ${streamIdle}s`);
  const api = routeFor(parts, `/${SALES_SERVICE_NAME}/UploadCSVStream`);
  assert.ok(api);
  const action = asObject(api.route.route, "route");
  // The route timeout defaults to 15 s and runs until the response is in: off for the API.
  assert.equal(durationSeconds(action.timeout, "route timeout"), 0);
  assert.ok(durationSeconds(action.idle_timeout, "route idle_timeout") >= 60);
  // 0 means: use the client's grpc-timeout as sent, uncapped.
  const maxStream = asObject(action.max_stream_duration, "max_stream_duration");
  assert.equal(durationSeconds(maxStream.grpc_timeout_header_max, "grpc_timeout_header_max"), 0);
  assert.equal(maxStream.max_stream_duration, undefined);
  // The page keeps the edge guide's short timeouts.
  const page = asObject(routeFor(parts, "/")!.route.route, "route");
  assert.equal(durationSeconds(page.timeout, "page timeout"), 15);
  assert.equal(durationSeconds(page.idle_timeout, "page idle_timeout"), 15);
});

Deno.test("envoy.yaml follows Envoy's edge-proxy best practices point by point", async (t) => {
  const parts = await readEnvoyParts();
  const { config, hcm, listener, clusters } = parts;
  const overload = asObject(config.overload_manager, "overload_manager");
  const monitors = asArray(overload.resource_monitors, "resource_monitors").map((monitor) =>
    asObject(monitor, "resource_monitor")
  );
  const monitor = (name: string) => {
    const found = monitors.find((candidate) => candidate.name === name);
    assert.ok(found, `no resource monitor ${name}`);
    return asObject(found.typed_config, name);
  };
  await t.step("overload manager: heap limit, with load shedding as it fills", () => {
    const heap = monitor("envoy.resource_monitors.fixed_heap");
    assert.ok(Number(heap.max_heap_size_bytes) >= 256 * 2 ** 20);
    const actions = asArray(overload.actions, "actions").map((action) =>
      asObject(action, "action")
    );
    for (const name of ["shrink_heap", "stop_accepting_requests"]) {
      const action = actions.find((candidate) =>
        candidate.name === `envoy.overload_actions.${name}`
      );
      assert.ok(action, `no overload action ${name}`);
      const trigger = asObject(asArray(action.triggers, "triggers")[0], "trigger");
      assert.equal(trigger.name, "envoy.resource_monitors.fixed_heap");
      const threshold = Number(asObject(trigger.threshold, "threshold").value);
      assert.ok(threshold > 0.5 && threshold < 1, `${name} at ${threshold}`);
    }
  });
  await t.step("overload manager: global downstream connection limit", () => {
    const connections = monitor("envoy.resource_monitors.global_downstream_max_connections");
    assert.ok(Number(connections.max_active_downstream_connections) > 0);
  });
  await t.step(
    "listener connection limit, under the global one, for a listener that exists",
    () => {
      const runtime = asObject(
        asObject(
          asArray(asObject(config.layered_runtime, "layered_runtime").layers, "layers")[0],
          "layer",
        )
          .static_layer,
        "static_layer",
      );
      const limits = asObject(
        asObject(asObject(runtime.envoy, "envoy").resource_limits, "resource_limits").listener,
        "listener",
      );
      const global = Number(
        monitor("envoy.resource_monitors.global_downstream_max_connections")
          .max_active_downstream_connections,
      );
      assert.deepEqual(Object.keys(limits), parts.listeners.map((l) => String(l.name)));
      for (const [name, limit] of Object.entries(limits)) {
        const value = Number(asObject(limit, name).connection_limit);
        assert.ok(value > 0 && value < global, `${name}: ${value}`);
      }
    },
  );
  await t.step("admin endpoint restricted to loopback", () => {
    assert.equal(parts.admin.address, "127.0.0.1");
  });
  await t.step("listener and cluster buffer limits of 32 KiB", () => {
    for (const owner of [listener, ...clusters]) {
      assert.equal(owner.per_connection_buffer_limit_bytes, EDGE_BUFFER_BYTES, String(owner.name));
    }
  });
  await t.step("use_remote_address, trusting no X-Forwarded-For hop before Envoy", () => {
    assert.equal(hcm.use_remote_address, true);
    assert.equal(hcm.xff_num_trusted_hops, 0);
  });
  await t.step("path normalization, for routing on the path", () => {
    assert.equal(hcm.normalize_path, true);
    assert.equal(hcm.merge_slashes, true);
    assert.equal(hcm.path_with_escaped_slashes_action, "REJECT_REQUEST");
  });
  await t.step("headers_with_underscores_action REJECT_REQUEST", () => {
    const common = asObject(hcm.common_http_protocol_options, "common_http_protocol_options");
    assert.equal(common.headers_with_underscores_action, "REJECT_REQUEST");
  });
  await t.step("connection and stream timeouts", () => {
    const headers = durationSeconds(hcm.request_headers_timeout, "request_headers_timeout");
    assert.ok(headers > 0 && headers <= 30, `request_headers_timeout ${headers}s`);
    assert.equal(durationSeconds(hcm.stream_idle_timeout, "stream_idle_timeout"), 300);
    const common = asObject(hcm.common_http_protocol_options, "common_http_protocol_options");
    assert.equal(durationSeconds(common.idle_timeout, "idle_timeout"), 3600);
  });
  await t.step("HTTP/2: at most 100 streams, 64 KiB stream and 1 MiB connection windows", () => {
    const upstream = asObject(
      asObject(
        asObject(
          asObject(clusterNamed(parts, "sales_grpc").typed_extension_protocol_options, "options")[
            HTTP_PROTOCOL_OPTIONS
          ],
          HTTP_PROTOCOL_OPTIONS,
        ).explicit_http_config,
        "explicit_http_config",
      ).http2_protocol_options,
      "http2_protocol_options",
    );
    for (
      const options of [asObject(hcm.http2_protocol_options, "http2_protocol_options"), upstream]
    ) {
      assert.equal(options.max_concurrent_streams, 100);
      assert.equal(options.initial_stream_window_size, 64 * 1024);
      assert.equal(options.initial_connection_window_size, 1024 * 1024);
    }
  });
});

Deno.test("envoy.yaml buffers no whole request body, so 32 KiB buffers suit uploads of any size", async () => {
  const { httpFilters, routes } = await readEnvoyParts();
  // cors and grpc_web stream bodies through; the router buffers only for retries and mirrors.
  assert.deepEqual(httpFilters.map((filter) => filter.name), [
    "envoy.filters.http.cors",
    "envoy.filters.http.grpc_web",
    "envoy.filters.http.router",
  ]);
  for (const { route, virtualHost } of routes) {
    const action = asObject(route.route, "route");
    for (const key of ["retry_policy", "request_mirror_policies", "internal_redirect_policy"]) {
      assert.equal(action[key], undefined, key);
      assert.equal(virtualHost[key], undefined, key);
    }
  }
});

Deno.test("envoy.yaml CORS policy admits gRPC-Web calls and exposes grpc-status and grpc-message", async () => {
  const { routes, httpFilters } = await readEnvoyParts();
  const filterNames = httpFilters.map((filter) => filter.name);
  for (const { route, virtualHost, corsPolicy } of routes) {
    for (const owner of [route, virtualHost]) {
      for (const key of Object.keys(asObject(owner.typed_per_filter_config ?? {}, "per-filter"))) {
        assert.ok(filterNames.includes(key), `typed_per_filter_config for missing filter ${key}`);
      }
    }
    assert.ok(corsPolicy, `no CorsPolicy for ${JSON.stringify(route.match)}`);
    assert.equal(
      corsPolicy["@type"],
      "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
    );
    const exposed = headerList(corsPolicy.expose_headers);
    for (const name of ["grpc-status", "grpc-message"]) assert.ok(exposed.includes(name), name);
    const allowed = headerList(corsPolicy.allow_headers);
    for (
      const name of [
        "x-grpc-web",
        "x-user-agent",
        "content-type",
        "grpc-timeout",
        "authorization",
        "keep-alive",
        "cache-control",
        "user-agent",
        "grpc-accept-encoding",
        "grpc-encoding",
        "x-request-id",
        "x-upload-id",
      ]
    ) {
      assert.ok(allowed.includes(name), `allow_headers lacks ${name}`);
    }
    assert.ok(headerList(corsPolicy.allow_methods).includes("post"));
    // Origins are listed exactly: no wildcard, no regex.
    const origins = asArray(corsPolicy.allow_origin_string_match, "allow_origin_string_match");
    assert.ok(origins.length > 0);
    for (const matcher of origins) {
      const keys = Object.keys(asObject(matcher, "matcher"));
      assert.deepEqual(keys, ["exact"]);
      const origin = String(asObject(matcher, "matcher").exact);
      assert.equal(new URL(origin).origin, origin);
    }
  }
});

Deno.test("envoy.yaml CORS policy allows every header the page's own gRPC-Web client sends", async () => {
  const { routes } = await readEnvoyParts();
  const allowed = headerList(routes[0].corsPolicy?.allow_headers);
  const sent = new Set<string>();
  const capture: typeof fetch = (_input, init) => {
    new Headers(init?.headers).forEach((_value, name) => sent.add(name));
    return Promise.resolve(new Response(null, { status: 503 }));
  };
  const client = createGrpcWebSalesClient("http://localhost:8081", {
    fetch: capture,
    headers: () => ({ authorization: "Bearer token" }),
  });
  await assert.rejects(client.startUpload({ filename: "a.csv", size: 3n }, { timeoutMs: 60_000 }));
  await assert.rejects(appendBlob(client, { uploadId: "u", offset: 0, chunk: new Blob(["abc"]) }));
  assert.ok(sent.has("content-type") && sent.has("authorization") && sent.has("grpc-timeout"));
  // Browsers may always send these (CORS-safelisted or forbidden request headers).
  const alwaysAllowed = new Set(["accept", "accept-language", "content-language"]);
  for (const name of sent) {
    assert.ok(allowed.includes(name) || alwaysAllowed.has(name), `CORS would block header ${name}`);
  }
});

Deno.test("envoy.yaml CORS policy lives on the virtual host, so preflights for every route get it", async () => {
  const { routes } = await readEnvoyParts();
  for (const { virtualHost } of routes) {
    const perFilter = asObject(virtualHost.typed_per_filter_config, "typed_per_filter_config");
    assert.ok(asObject(perFilter[CORS_FILTER], CORS_FILTER).allow_origin_string_match);
  }
});

Deno.test("envoy.yaml hashes the chunked-upload header the clients send onto a consistent-hash gRPC cluster, as nginx's stand-in does", async () => {
  const parts = await readEnvoyParts();
  // Both clients (the CLI and benchmarks over gRPC, the page over gRPC-Web) send one header.
  assert.equal(CLI_ROUTING_HEADER, PAGE_ROUTING_HEADER);
  for (const method of ["StartUpload", "AppendUpload", "FinishUpload", "CancelUpload"]) {
    const found = routeFor(parts, `/${SALES_SERVICE_NAME}/${method}`);
    assert.ok(found, method);
    const action = asObject(found.route.route, "route");
    const hashPolicy = asArray(action.hash_policy, `${method} hash_policy`).map((policy) =>
      asObject(asObject(policy, "hash_policy[]").header, "hash_policy[].header").header_name
    );
    assert.deepEqual(hashPolicy, [CLI_ROUTING_HEADER], method);
    // A hash policy only steers a cluster whose load balancer hashes.
    const cluster = clusterNamed(parts, String(action.cluster));
    assert.ok(["RING_HASH", "MAGLEV"].includes(String(cluster.lb_policy)), `${cluster.lb_policy}`);
    // The browser may send it cross-origin.
    assert.ok(headerList(found.corsPolicy?.allow_headers).includes(CLI_ROUTING_HEADER));
  }
  // Results and the page may go to any replica: they are on shared storage, or stateless.
  for (const path of ["/results/0123abcd.csv", "/"]) {
    const { route } = routeFor(parts, path)!;
    assert.equal(asObject(route.route, "route").hash_policy, undefined, path);
  }
  // nginx's test config routes the same prefixes in the same order...
  const locations = await Deno.readTextFile(
    new URL("./nginx/sales_locations.conf", import.meta.url),
  );
  assert.deepEqual(
    [...locations.matchAll(/^location (\S+) \{/gm)].map((match) => match[1]),
    parts.routes.map(({ route }) => asObject(route.match, "match").prefix),
  );
  // ...and hashes the same header for both API upstreams.
  const template = await Deno.readTextFile(
    new URL("./nginx/nginx.conf.template", import.meta.url),
  );
  const variable = `$http_${CLI_ROUTING_HEADER.replaceAll("-", "_")}`;
  assert.match(template, new RegExp(`map \\${variable} \\$sales_upload_key`));
  for (const upstream of ["sales_grpc", "sales_grpc_web"]) {
    assert.match(
      template,
      new RegExp(`upstream ${upstream} \\{\\n\\s+hash \\$sales_upload_key consistent;`),
      upstream,
    );
  }
});
