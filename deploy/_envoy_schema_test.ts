import assert from "node:assert/strict";
import { readYaml, type YamlObject } from "./_deploy_files.ts";
import { envoyParts } from "./_envoy_config.ts";
import { loadEnvoySchema } from "./_envoy_schema.ts";

const HCM = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
const ROUTE = `${HCM}.route_config.virtual_hosts[0].routes[0].route`;
const CLUSTER = "static_resources.clusters[0]";

Deno.test("loadEnvoySchema accepts envoy/envoy.yaml", async () => {
  const schema = await loadEnvoySchema();
  assert.deepEqual(schema.check(await readYaml("envoy/envoy.yaml")), []);
});

/** A known-bad change to the real envoy.yaml, and what the refusal must say. */
interface BadCase {
  name: string;
  change: (config: YamlObject) => void;
  path: string;
  reason: RegExp;
}

const BAD_CASES: BadCase[] = [
  {
    name: "a deprecated field",
    change: (config) => {
      (config.admin as YamlObject).access_log_path = "/dev/null";
    },
    path: "admin.access_log_path",
    reason: /Admin\.access_log_path is deprecated/,
  },
  {
    name: "a deprecated field inside a typed_config",
    change: (config) => {
      const route = envoyParts(config).routes[0].route.route as YamlObject;
      route.max_grpc_timeout = "0s";
    },
    path: `${ROUTE}.max_grpc_timeout`,
    reason: /RouteAction\.max_grpc_timeout is deprecated/,
  },
  {
    name: "a field removed from the v3 API",
    change: (config) => {
      envoyParts(config).clusters[0].hosts = [];
    },
    path: `${CLUSTER}.hosts`,
    reason: /removed from Envoy's v3 API/,
  },
  {
    name: "a misspelled field",
    change: (config) => {
      envoyParts(config).hcm.stream_idle_timout = "300s";
    },
    path: `${HCM}.stream_idle_timout`,
    reason: /has no field stream_idle_timout; did you mean stream_idle_timeout\?/,
  },
  {
    name: "a field in camelCase",
    change: (config) => {
      envoyParts(config).hcm.useRemoteAddress = true;
    },
    path: `${HCM}.useRemoteAddress`,
    reason: /write useRemoteAddress as use_remote_address/,
  },
  {
    name: "a wrong enum value",
    change: (config) => {
      const common = envoyParts(config).hcm.common_http_protocol_options as YamlObject;
      common.headers_with_underscores_action = "REJECT";
    },
    path: `${HCM}.common_http_protocol_options.headers_with_underscores_action`,
    reason: /"REJECT" is not a value of .*\(one of ALLOW, REJECT_REQUEST, DROP_HEADER\)/,
  },
  {
    name: "a deprecated enum value",
    change: (config) => {
      config.dynamic_resources = {
        lds_config: { path_config_source: { path: "/lds.yaml" }, resource_api_version: "V2" },
      };
    },
    path: "dynamic_resources.lds_config.resource_api_version",
    reason: /ApiVersion\.V2 is deprecated/,
  },
  {
    name: "a missing required field",
    change: (config) => {
      const check = (envoyParts(config).clusters[0].health_checks as YamlObject[])[0];
      delete check.timeout;
    },
    path: `${CLUSTER}.health_checks[0].timeout`,
    reason: /missing, and envoy\.config\.core\.v3\.HealthCheck\.timeout is required/,
  },
  {
    name: "an empty string the API says must not be empty",
    change: (config) => {
      envoyParts(config).hcm.stat_prefix = "";
    },
    path: `${HCM}.stat_prefix`,
    reason: /must not be empty/,
  },
  {
    name: "an empty list the API says must not be empty",
    change: (config) => {
      envoyParts(config).routes[0].virtualHost.domains = [];
    },
    path: `${HCM}.route_config.virtual_hosts[0].domains`,
    reason: /needs at least 1 item/,
  },
  {
    name: "a oneof with two members",
    change: (config) => {
      (envoyParts(config).routes[0].route.route as YamlObject).cluster_header = "x-cluster";
    },
    path: `${ROUTE}.cluster_header`,
    reason: /cluster and cluster_header are both set, but oneof cluster_specifier/,
  },
  {
    name: "a required oneof with no member",
    change: (config) => {
      delete (envoyParts(config).routes[0].route.route as YamlObject).cluster;
    },
    path: ROUTE,
    reason: /one of cluster, cluster_header, .* is required \(oneof cluster_specifier/,
  },
  {
    name: "an @type that names no message",
    change: (config) => {
      const filter = envoyParts(config).httpFilters[0].typed_config as YamlObject;
      filter["@type"] = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Corz";
    },
    path: `${HCM}.http_filters[0].typed_config.@type`,
    reason: /Corz is not a message of Envoy's API/,
  },
  {
    name: "a field of another message under an @type",
    change: (config) => {
      (envoyParts(config).httpFilters[2].typed_config as YamlObject).allow_methods = "POST";
    },
    path: `${HCM}.http_filters[2].typed_config.allow_methods`,
    reason: /envoy\.extensions\.filters\.http\.router\.v3\.Router has no field allow_methods/,
  },
  {
    name: "a duration not in protobuf form",
    change: (config) => {
      envoyParts(config).clusters[0].connect_timeout = "5m";
    },
    path: `${CLUSTER}.connect_timeout`,
    reason: /expected a duration such as "10s"/,
  },
  {
    name: "a number out of its type's range",
    change: (config) => {
      envoyParts(config).listener.per_connection_buffer_limit_bytes = -1;
    },
    path: "static_resources.listeners[0].per_connection_buffer_limit_bytes",
    reason: /-1 is out of range for uint32/,
  },
  {
    name: "a number outside its validate.rules bounds",
    change: (config) => {
      const h2 = envoyParts(config).hcm.http2_protocol_options as YamlObject;
      h2.max_concurrent_streams = 0;
    },
    path: `${HCM}.http2_protocol_options.max_concurrent_streams`,
    reason: /must be gte 1, got 0/,
  },
];

Deno.test("loadEnvoySchema refuses each known-bad change to envoy.yaml, naming its path", async (t) => {
  const schema = await loadEnvoySchema();
  const original = await readYaml("envoy/envoy.yaml");
  for (const bad of BAD_CASES) {
    await t.step(bad.name, () => {
      const config = structuredClone(original);
      bad.change(config);
      const problems = schema.check(config);
      assert.equal(problems.length, 1, problems.join("\n"));
      const [path, ...reason] = problems[0].split(": ");
      assert.equal(path, bad.path);
      assert.match(reason.join(": "), bad.reason);
    });
  }
});

Deno.test("loadEnvoySchema checks a value against the message its type names", async () => {
  const schema = await loadEnvoySchema();
  const type = "envoy.config.core.v3.SocketAddress";
  assert.deepEqual(schema.check({ address: "127.0.0.1", port_value: 9901 }, type), []);
  assert.deepEqual(schema.check({ port_value: "http" }, type), [
    'port_value: expected a whole number (uint32), got "http"',
    "address: missing, and envoy.config.core.v3.SocketAddress.address must not be empty",
  ]);
  assert.deepEqual(schema.check({}, "envoy.config.core.v3.NoSuchMessage"), [
    "envoy.config.core.v3.NoSuchMessage is not a message of Envoy's API",
  ]);
});
