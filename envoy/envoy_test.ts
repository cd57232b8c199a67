import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { appendBlob, createSalesClient } from "../islands/_upload_client.ts";
import { startGrpcServer } from "../server/grpc/grpc_server.ts";
import { SALES_SERVICE_NAME } from "../server/grpc/sales_proto.ts";
import { createFakeSalesService } from "../server/web/testdata/fake_sales_service.ts";
import { asArray, asObject, durationSeconds, readYaml, walkKeys } from "./_deploy_files.ts";
import {
  clusterEndpoints,
  CORS_FILTER,
  envoyParts,
  headerList,
  readEnvoyParts,
} from "./_envoy_config.ts";
import {
  findDeprecatedEnvoyFields,
  findUnverifiedEnvoyFields,
  isCurrentFilterName,
} from "./_envoy_rules.ts";

const HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/** The chunk size the server hands out (`server/main.ts`: 4 MiB unless messages are smaller). */
const CHUNK_BYTES = 4 * 1024 * 1024;

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

Deno.test("envoy.yaml uses no deprecated or removed Envoy field", async () => {
  const config = await readYaml("envoy/envoy.yaml");
  assert.deepEqual(findDeprecatedEnvoyFields(config), []);
  const { httpFilters, hcm } = envoyParts(config);
  for (
    const filter of [...httpFilters, { name: "envoy.filters.network.http_connection_manager" }]
  ) {
    assert.ok(isCurrentFilterName(String(filter.name)), `filter name ${filter.name}`);
  }
  assert.ok(hcm !== undefined);
});

Deno.test("findDeprecatedEnvoyFields flags each deprecated form and spares the current ones", async () => {
  const config = await readYaml("envoy/envoy.yaml");
  const parts = envoyParts(config);
  const cluster = parts.clusters[0];
  cluster.http2_protocol_options = {};
  cluster.hosts = [{ socket_address: { address: "sales", port_value: 50051 } }];
  cluster.dns_lookup_family = "V4_ONLY";
  parts.routes[0].virtualHost.cors = { allow_origin_string_match: [{ exact: "http://x" }] };
  asObject(parts.routes[0].route.route, "route").max_grpc_timeout = "0s";
  asObject(parts.config.admin, "admin").access_log_path = "/dev/null";
  parts.hcm.idle_timeout = "60s";
  const found = findDeprecatedEnvoyFields(config).map((line) => line.split(":")[0]);
  assert.deepEqual(
    found.sort(),
    [
      "admin.access_log_path",
      "static_resources.clusters[0].dns_lookup_family",
      "static_resources.clusters[0].hosts",
      "static_resources.clusters[0].http2_protocol_options",
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.idle_timeout",
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config" +
      ".virtual_hosts[0].cors",
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config" +
      ".virtual_hosts[0].routes[0].route.max_grpc_timeout",
    ].sort(),
  );
  // The same names are current where they are: http2_protocol_options inside
  // explicit_http_config, idle_timeout on routes and in common_http_protocol_options.
  assert.ok(!found.some((path) => path.includes("explicit_http_config")));
  assert.ok(!found.some((path) => path.endsWith("route.idle_timeout")));
});

Deno.test("envoy.yaml uses only fields checked against Envoy's v3 reference", async () => {
  const config = await readYaml("envoy/envoy.yaml");
  assert.deepEqual(findUnverifiedEnvoyFields(config), []);
  // A misspelt field is caught (Envoy would refuse to start on it).
  envoyParts(config).hcm.stream_idle_timout = "300s";
  assert.deepEqual(findUnverifiedEnvoyFields(config), [
    "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stream_idle_timout",
  ]);
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

Deno.test("envoy.yaml routes only our service, to clusters it defines, over HTTP/2", async () => {
  const { routes, clusters } = await readEnvoyParts();
  const names = clusters.map((cluster) => cluster.name);
  assert.ok(routes.length > 0);
  for (const { route } of routes) {
    assert.equal(asObject(route.match, "match").prefix, `/${SALES_SERVICE_NAME}/`);
    assert.ok(names.includes(asObject(route.route, "route").cluster), JSON.stringify(route));
  }
  for (const cluster of clusters) {
    assert.equal(asObject(cluster.load_assignment, "load_assignment").cluster_name, cluster.name);
    assert.ok(clusterEndpoints(cluster).length > 0);
    const options = asObject(
      asObject(cluster.typed_extension_protocol_options, "typed_extension_protocol_options")[
        HTTP_PROTOCOL_OPTIONS
      ],
      HTTP_PROTOCOL_OPTIONS,
    );
    assert.equal(options["@type"], `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`);
    const explicit = asObject(options.explicit_http_config, "explicit_http_config");
    asObject(explicit.http2_protocol_options, "http2_protocol_options");
  }
});

Deno.test("envoy.yaml health-checks each cluster with grpc.health.v1 for a service our server reports", async () => {
  const { clusters } = await readEnvoyParts();
  for (const cluster of clusters) {
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
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { clusters } = await readEnvoyParts();
    const serviceName = String(
      asObject(
        asObject(asArray(clusters[0].health_checks, "checks")[0], "check").grpc_health_check,
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
  const { hcm, routes } = await readEnvoyParts();
  // No limit on a whole stream: request_timeout and max_stream_duration unset (or 0 = off).
  for (const [owner, key] of [[hcm, "request_timeout"], [hcm, "max_stream_duration"]] as const) {
    if (owner[key] !== undefined) assert.equal(durationSeconds(owner[key], key), 0);
  }
  const common = asObject(hcm.common_http_protocol_options ?? {}, "common_http_protocol_options");
  assert.equal(common.max_stream_duration, undefined);
  // Idle streams still end, but never sooner than a minute without a byte.
  const streamIdle = durationSeconds(hcm.stream_idle_timeout, "stream_idle_timeout");
  assert.ok(streamIdle >= 60, `stream_idle_timeout ${streamIdle}s`);
  for (const { route } of routes) {
    const action = asObject(route.route, "route");
    // The route timeout defaults to 15 s and starts once the request is in: it must be off.
    assert.equal(durationSeconds(action.timeout, "route timeout"), 0);
    assert.ok(durationSeconds(action.idle_timeout, "route idle_timeout") >= 60);
    const maxStream = asObject(action.max_stream_duration ?? {}, "max_stream_duration");
    if (maxStream.max_stream_duration !== undefined) {
      assert.equal(durationSeconds(maxStream.max_stream_duration, "max_stream_duration"), 0);
    }
    if (maxStream.grpc_timeout_header_max !== undefined) {
      // 0 means: use the client's grpc-timeout as sent, uncapped.
      assert.equal(
        durationSeconds(maxStream.grpc_timeout_header_max, "grpc_timeout_header_max"),
        0,
      );
    }
  }
});

Deno.test("envoy.yaml buffers one whole 4 MiB chunk per connection, even as grpc-web-text", async () => {
  const { listener, clusters } = await readEnvoyParts();
  // A gRPC-Web frame adds 5 bytes; text mode base64-encodes the frame (4 bytes per 3).
  const textFrameBytes = Math.ceil((CHUNK_BYTES + 64) / 3) * 4;
  for (const owner of [listener, ...clusters]) {
    assert.ok(
      Number(owner.per_connection_buffer_limit_bytes) >= textFrameBytes,
      `${owner.name}: ${owner.per_connection_buffer_limit_bytes}`,
    );
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
  const client = createSalesClient("http://localhost:8081", {
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

Deno.test("envoy.yaml durations are all in the protobuf form Envoy reads", async () => {
  const config = await readYaml("envoy/envoy.yaml");
  const durationKeys = new Set([
    "stream_idle_timeout",
    "request_headers_timeout",
    "idle_timeout",
    "timeout",
    "grpc_timeout_header_max",
    "connect_timeout",
    "interval",
    "no_traffic_interval",
  ]);
  let seen = 0;
  walkKeys(config, (_path, key, value) => {
    if (durationKeys.has(key)) {
      durationSeconds(value, key);
      seen++;
    }
  });
  assert.ok(seen >= 8, `only ${seen} durations found`);
  assert.throws(() => durationSeconds("5m", "x"));
  assert.throws(() => durationSeconds(300 as unknown as string, "x"));
});

Deno.test("envoy.yaml CORS policy lives on the virtual host, so preflights for every route get it", async () => {
  const { routes } = await readEnvoyParts();
  for (const { virtualHost } of routes) {
    const perFilter = asObject(virtualHost.typed_per_filter_config, "typed_per_filter_config");
    assert.ok(asObject(perFilter[CORS_FILTER], CORS_FILTER).allow_origin_string_match);
  }
});
