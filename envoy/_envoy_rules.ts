/**
 * What `envoy/envoy.yaml` may and may not contain, from Envoy's v3 API reference: the fields we
 * checked against the docs (anything else is a typo or an unchecked field), and the fields Envoy
 * deprecated or removed (anything on that list must not come back).
 *
 * @module
 */

import {
  formatPath,
  walkKeys,
  type Yaml,
  type YamlObject,
  type YamlPath,
} from "./_deploy_files.ts";

/**
 * Every field name envoy.yaml uses, each checked in Envoy's v3 reference (the message is named).
 * Adding a field means reading its doc first, then adding it here.
 */
export const VERIFIED_ENVOY_FIELDS: ReadonlySet<string> = new Set([
  // config.bootstrap.v3.Bootstrap / Admin
  "admin",
  "static_resources",
  "listeners",
  "clusters",
  // config.core.v3.Address / SocketAddress
  "address",
  "socket_address",
  "port_value",
  // config.listener.v3.Listener / FilterChain / Filter, and HttpFilter
  "name",
  "per_connection_buffer_limit_bytes",
  "filter_chains",
  "filters",
  "typed_config",
  "@type",
  // extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
  "stat_prefix",
  "codec_type",
  "use_remote_address",
  "normalize_path",
  "merge_slashes",
  "stream_idle_timeout",
  "request_headers_timeout",
  "common_http_protocol_options",
  "access_log",
  "route_config",
  "http_filters",
  // config.core.v3.HttpProtocolOptions
  "idle_timeout",
  "headers_with_underscores_action",
  // config.route.v3.RouteConfiguration / VirtualHost / Route / RouteMatch / RouteAction
  "virtual_hosts",
  "domains",
  "typed_per_filter_config",
  "routes",
  "match",
  "prefix",
  "route",
  "cluster",
  "timeout",
  "max_stream_duration",
  // config.route.v3.RouteAction.MaxStreamDuration
  "grpc_timeout_header_max",
  // extensions.filters.http.cors.v3.CorsPolicy and type.matcher.v3.StringMatcher
  "allow_origin_string_match",
  "exact",
  "allow_methods",
  "allow_headers",
  "expose_headers",
  "max_age",
  // config.cluster.v3.Cluster
  "type",
  "connect_timeout",
  "typed_extension_protocol_options",
  "load_assignment",
  "health_checks",
  // extensions.upstreams.http.v3.HttpProtocolOptions (ExplicitHttpConfig)
  "explicit_http_config",
  "http2_protocol_options",
  // config.endpoint.v3.ClusterLoadAssignment / LocalityLbEndpoints / LbEndpoint / Endpoint
  "cluster_name",
  "endpoints",
  "lb_endpoints",
  "endpoint",
  // config.core.v3.HealthCheck / HealthCheck.GrpcHealthCheck
  "interval",
  "no_traffic_interval",
  "unhealthy_threshold",
  "healthy_threshold",
  "grpc_health_check",
  "service_name",
]);

/** Maps whose keys are extension or filter names, not fields. */
const NAME_KEYED_MAPS = new Set(["typed_per_filter_config", "typed_extension_protocol_options"]);

/** Field names in envoy.yaml that are not in {@linkcode VERIFIED_ENVOY_FIELDS}. */
export function findUnverifiedEnvoyFields(config: YamlObject): string[] {
  const found: string[] = [];
  walkKeys(config, (parentPath, key) => {
    if (NAME_KEYED_MAPS.has(String(parentPath.at(-1)))) return;
    if (!VERIFIED_ENVOY_FIELDS.has(key)) found.push(formatPath([...parentPath, key]));
  });
  return found;
}

/** Where a field sits, for rules that apply to one message only. */
interface FieldContext {
  parentPath: YamlPath;
  parent: YamlObject;
}

/** A field Envoy deprecated or removed, with where the rule applies and why. */
interface DeprecatedField {
  key: string | RegExp;
  /** Applies everywhere when absent. */
  where?: (context: FieldContext) => boolean;
  why: string;
}

const isCluster = ({ parentPath }: FieldContext) =>
  parentPath.length === 3 && parentPath[0] === "static_resources" && parentPath[1] === "clusters";
const isTyped = (suffix: string) => ({ parent }: FieldContext) =>
  typeof parent["@type"] === "string" && parent["@type"].endsWith(suffix);
const isRouteMatch = ({ parentPath }: FieldContext) => parentPath.at(-1) === "match";

const CLUSTER_PROTOCOL =
  "Cluster field deprecated (v3.0): set it in typed_extension_protocol_options " +
  "(extensions.upstreams.http.v3.HttpProtocolOptions)";
const CLUSTER_DNS =
  "Cluster DNS field deprecated in favour of the envoy.cluster.dns extension (DnsCluster); " +
  "envoyproxy/envoy#36353";

/**
 * Fields Envoy has deprecated or removed, each with the reason from its docs. Deprecated fields
 * still load (with a warning) until removal; removed ones make the whole config fail to load.
 */
export const DEPRECATED_ENVOY_FIELDS: readonly DeprecatedField[] = [
  {
    key: "hosts",
    why: "Cluster.hosts was removed in v3: endpoints go in load_assignment",
  },
  {
    key: "config",
    why: "Struct filter configs were removed: every extension takes typed_config with an @type",
  },
  {
    key: "per_filter_config",
    why: "removed (reserved in v3 VirtualHost/Route): use typed_per_filter_config",
  },
  { key: "tls_context", why: "removed in v3: use transport_socket" },
  {
    key: "cors",
    why:
      "VirtualHost/Route/RouteAction cors is deprecated: use the cors filter with a CorsPolicy in typed_per_filter_config",
  },
  {
    key: /^(allow_origin|allow_origin_regex)$/,
    why: "CorsPolicy field deprecated (1.12) in favour of allow_origin_string_match",
  },
  {
    key: "enabled",
    where: isTyped(".CorsPolicy"),
    why: "CorsPolicy.enabled deprecated (1.10) in favour of filter_enabled",
  },
  { key: "access_log_path", why: "Admin.access_log_path deprecated: use Admin.access_log" },
  { key: "event_log_path", why: "HealthCheck.event_log_path deprecated: use event_logger" },
  {
    key: "per_request_buffer_limit_bytes",
    why: "deprecated in favour of request_body_buffer_limit (VirtualHost/Route)",
  },
  {
    key: /^(max_grpc_timeout|grpc_timeout_offset)$/,
    why: "RouteAction field deprecated: use max_stream_duration.grpc_timeout_header_max/offset",
  },
  {
    key: /^(access_log_flush_interval|flush_access_log_on_new_request)$/,
    why: "HttpConnectionManager field deprecated: use access_log_options",
  },
  {
    key: "use_original_dst",
    why: "Listener.use_original_dst removed: use the original_dst listener filter",
  },
  { key: "reuse_port", why: "Listener.reuse_port deprecated: use enable_reuse_port" },
  {
    key: /^(exact_match|safe_regex_match|prefix_match|suffix_match|contains_match|regex_match)$/,
    why: "HeaderMatcher field deprecated: use string_match",
  },
  { key: /^hidden_envoy_deprecated_/, why: "a deprecated field under its hidden name" },
  {
    key: "idle_timeout",
    where: isTyped(".HttpConnectionManager"),
    why:
      "HttpConnectionManager.idle_timeout (v2) moved to common_http_protocol_options.idle_timeout",
  },
  { key: "regex", where: isRouteMatch, why: "RouteMatch.regex removed: use safe_regex" },
  ...[
    "http2_protocol_options",
    "http_protocol_options",
    "common_http_protocol_options",
    "upstream_http_protocol_options",
    "protocol_selection",
    "max_requests_per_connection",
  ].map((key): DeprecatedField => ({ key, where: isCluster, why: CLUSTER_PROTOCOL })),
  {
    key: "track_timeout_budgets",
    where: isCluster,
    why: "Cluster.track_timeout_budgets deprecated: use track_cluster_stats",
  },
  ...[
    "dns_refresh_rate",
    "dns_failure_refresh_rate",
    "respect_dns_ttl",
    "dns_jitter",
    "dns_lookup_family",
    "dns_resolvers",
    "use_tcp_for_dns_lookups",
    "dns_resolution_config",
    "typed_dns_resolver_config",
  ].map((key): DeprecatedField => ({ key, where: isCluster, why: CLUSTER_DNS })),
];

/** `path: why` for every deprecated or removed field in `config`. */
export function findDeprecatedEnvoyFields(config: Yaml): string[] {
  const found: string[] = [];
  walkKeys(config, (parentPath, key, _value, parent) => {
    if (NAME_KEYED_MAPS.has(String(parentPath.at(-1)))) return;
    for (const rule of DEPRECATED_ENVOY_FIELDS) {
      const matches = typeof rule.key === "string" ? rule.key === key : rule.key.test(key);
      if (matches && (rule.where === undefined || rule.where({ parentPath, parent }))) {
        found.push(`${formatPath([...parentPath, key])}: ${rule.why}`);
      }
    }
  });
  return found;
}

/**
 * The well-known names Envoy gave filters before v3 (`envoy.router`, `envoy.cors`, ...) were
 * deprecated and removed; current names are `envoy.filters.<kind>.<name>`.
 */
export function isCurrentFilterName(name: string): boolean {
  return /^envoy\.filters\.(http|network|listener)\.[a-z0-9_]+$/.test(name);
}
