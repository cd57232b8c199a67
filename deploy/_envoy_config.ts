/**
 * `envoy/envoy.yaml` taken apart into the pieces the tests check: admin address, the listener,
 * its HTTP connection manager, routes, filters, CORS policies and upstream clusters, and which
 * cluster a request path ends up at.
 *
 * @module
 */

import {
  asArray,
  asObject,
  asString,
  readYaml,
  type Yaml,
  type YamlObject,
} from "./_deploy_files.ts";

/** The filter name CORS policies are keyed by in typed_per_filter_config. */
export const CORS_FILTER = "envoy.filters.http.cors";

/** A host and port from a `socket_address`. */
export interface SocketAddress {
  address: string;
  port: number;
}

/** A route and the virtual host it belongs to. */
export interface EnvoyRoute {
  virtualHost: YamlObject;
  route: YamlObject;
  /** The CORS policy in force: the route's own, else its virtual host's. */
  corsPolicy: YamlObject | undefined;
}

/** The parts of envoy.yaml the tests look at. */
export interface EnvoyParts {
  config: YamlObject;
  admin: SocketAddress;
  listeners: YamlObject[];
  listener: YamlObject;
  listenerAddress: SocketAddress;
  /** The listener's HttpConnectionManager typed_config. */
  hcm: YamlObject;
  httpFilters: YamlObject[];
  routes: EnvoyRoute[];
  clusters: YamlObject[];
}

/** Reads a `socket_address`. */
export function socketAddress(value: Yaml | undefined, what: string): SocketAddress {
  const socket = asObject(asObject(value, what).socket_address, `${what}.socket_address`);
  const port = socket.port_value;
  if (typeof port !== "number") throw new Error(`${what} has no numeric port_value`);
  return { address: asString(socket.address, `${what}.socket_address.address`), port };
}

/** The CORS policy in a `typed_per_filter_config`, if any. */
function corsPolicyIn(owner: YamlObject): YamlObject | undefined {
  if (owner.typed_per_filter_config === undefined) return undefined;
  const perFilter = asObject(owner.typed_per_filter_config, "typed_per_filter_config");
  return perFilter[CORS_FILTER] === undefined
    ? undefined
    : asObject(perFilter[CORS_FILTER], CORS_FILTER);
}

/** Takes a parsed envoy.yaml apart; throws when its shape is not the one we deploy. */
export function envoyParts(config: YamlObject): EnvoyParts {
  const admin = socketAddress(asObject(config.admin, "admin").address, "admin.address");
  const staticResources = asObject(config.static_resources, "static_resources");
  const listeners = asArray(staticResources.listeners, "listeners").map((l, i) =>
    asObject(l, `listeners[${i}]`)
  );
  const listener = listeners[0];
  const chains = asArray(listener.filter_chains, "listeners[0].filter_chains");
  const networkFilters = asArray(asObject(chains[0], "filter_chains[0]").filters, "filters");
  const hcmFilter = asObject(networkFilters[0], "filters[0]");
  const hcm = asObject(hcmFilter.typed_config, "filters[0].typed_config");
  const routeConfig = asObject(hcm.route_config, "route_config");
  const routes: EnvoyRoute[] = [];
  for (const [v, vhostValue] of asArray(routeConfig.virtual_hosts, "virtual_hosts").entries()) {
    const virtualHost = asObject(vhostValue, `virtual_hosts[${v}]`);
    for (const [r, routeValue] of asArray(virtualHost.routes, "routes").entries()) {
      const route = asObject(routeValue, `virtual_hosts[${v}].routes[${r}]`);
      routes.push({
        virtualHost,
        route,
        corsPolicy: corsPolicyIn(route) ?? corsPolicyIn(virtualHost),
      });
    }
  }
  return {
    config,
    admin,
    listeners,
    listener,
    listenerAddress: socketAddress(listener.address, "listeners[0].address"),
    hcm,
    httpFilters: asArray(hcm.http_filters, "http_filters").map((f, i) =>
      asObject(f, `http_filters[${i}]`)
    ),
    routes,
    clusters: asArray(staticResources.clusters, "clusters").map((c, i) =>
      asObject(c, `clusters[${i}]`)
    ),
  };
}

/** Reads and takes apart envoy/envoy.yaml. */
export async function readEnvoyParts(): Promise<EnvoyParts> {
  return envoyParts(await readYaml("envoy/envoy.yaml"));
}

/** The endpoints of a cluster's `load_assignment`. */
export function clusterEndpoints(cluster: YamlObject): SocketAddress[] {
  const assignment = asObject(cluster.load_assignment, `${cluster.name}.load_assignment`);
  return asArray(assignment.endpoints, "endpoints").flatMap((locality) =>
    asArray(asObject(locality, "endpoints[]").lb_endpoints, "lb_endpoints").map((lbEndpoint) =>
      socketAddress(
        asObject(asObject(lbEndpoint, "lb_endpoints[]").endpoint, "endpoint").address,
        "endpoint.address",
      )
    )
  );
}

/** The cluster named `name`, or an error. */
export function clusterNamed(parts: EnvoyParts, name: string): YamlObject {
  const cluster = parts.clusters.find((candidate) => candidate.name === name);
  if (cluster === undefined) throw new Error(`envoy.yaml has no cluster ${name}`);
  return cluster;
}

/**
 * The route Envoy picks for a request to `path`: the first whose `match.prefix` starts the path,
 * as Envoy matches routes in order (every route here matches on a prefix).
 */
export function routeFor(parts: EnvoyParts, path: string): EnvoyRoute | undefined {
  return parts.routes.find(({ route }) => {
    const prefix = asObject(route.match, "match").prefix;
    if (typeof prefix !== "string") throw new Error(`route without a prefix: ${route.match}`);
    return path.startsWith(prefix);
  });
}

/** The cluster a request to `path` is sent to, and that cluster's endpoints. */
export function upstreamFor(
  parts: EnvoyParts,
  path: string,
): { cluster: YamlObject; endpoints: SocketAddress[] } {
  const found = routeFor(parts, path);
  if (found === undefined) throw new Error(`envoy.yaml routes nothing for ${path}`);
  const cluster = clusterNamed(parts, asString(asObject(found.route.route, "route").cluster, path));
  return { cluster, endpoints: clusterEndpoints(cluster) };
}

/** Splits a comma-separated header list (`allow_headers`, `expose_headers`) into lower-case names. */
export function headerList(value: Yaml | undefined): string[] {
  return typeof value === "string"
    ? value.split(",").map((name) => name.trim().toLowerCase()).filter((name) => name !== "")
    : [];
}
