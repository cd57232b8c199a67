/**
 * Reads the deployment files (`envoy/envoy.yaml`, `compose.yaml`, `Dockerfile`, `deno.json`) for
 * the tests in this folder, which check them as files: no Envoy or Docker runs on our machines.
 *
 * @module
 */

import { parse } from "yaml";

/** The repository root. */
export const REPO_ROOT = new URL("../", import.meta.url);

/** A parsed YAML (or JSON) value. */
export type Yaml = null | boolean | number | string | Yaml[] | YamlObject;
/** A parsed YAML mapping. */
export type YamlObject = { [key: string]: Yaml };
/** Keys and indices from the root of a tree down to one node. */
export type YamlPath = readonly (string | number)[];

/** Reads a repository file as text. */
export function readRepoFile(path: string): Promise<string> {
  return Deno.readTextFile(new URL(path, REPO_ROOT));
}

/** Reads and parses a YAML file of the repository; the top level must be a mapping. */
export async function readYaml(path: string): Promise<YamlObject> {
  return asObject(parse(await readRepoFile(path)) as Yaml, path);
}

/** Reads `deno.json`'s tasks. */
export async function readDenoTasks(): Promise<Record<string, string>> {
  const denoJson = JSON.parse(await readRepoFile("deno.json"));
  return denoJson.tasks;
}

/** `value` as a mapping, or an error naming `what`. */
export function asObject(value: Yaml | undefined, what: string): YamlObject {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${what} is not a mapping: ${JSON.stringify(value)}`);
  }
  return value;
}

/** `value` as a sequence, or an error naming `what`. */
export function asArray(value: Yaml | undefined, what: string): Yaml[] {
  if (!Array.isArray(value)) throw new Error(`${what} is not a sequence: ${JSON.stringify(value)}`);
  return value;
}

/** `value` as a string, or an error naming `what`. */
export function asString(value: Yaml | undefined, what: string): string {
  if (typeof value !== "string") {
    throw new Error(`${what} is not a string: ${JSON.stringify(value)}`);
  }
  return value;
}

/** Calls `visit` for every key of every mapping in the tree, parents before children. */
export function walkKeys(
  node: Yaml,
  visit: (parentPath: YamlPath, key: string, value: Yaml, parent: YamlObject) => void,
  path: YamlPath = [],
): void {
  if (Array.isArray(node)) {
    node.forEach((item, index) => walkKeys(item, visit, [...path, index]));
  } else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      visit(path, key, value, node);
      walkKeys(value, visit, [...path, key]);
    }
  }
}

/** `a.b[0].c` for error messages. */
export function formatPath(path: YamlPath): string {
  return path.map((part, i) => typeof part === "number" ? `[${part}]` : i === 0 ? part : `.${part}`)
    .join("");
}

/**
 * Seconds in a protobuf JSON `Duration` such as `"300s"` or `"0.25s"`: the only form Envoy's
 * YAML accepts for durations. Anything else throws, as Envoy would refuse it.
 */
export function durationSeconds(value: Yaml | undefined, what: string): number {
  if (typeof value !== "string" || !/^\d+(\.\d{1,9})?s$/.test(value)) {
    throw new Error(`${what} is not a protobuf duration like "300s": ${JSON.stringify(value)}`);
  }
  return Number(value.slice(0, -1));
}

/** Seconds in a compose duration such as `"15s"`, `"1m30s"` or `"500ms"`. */
export function composeDurationSeconds(value: Yaml | undefined, what: string): number {
  const text = asString(value, what);
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001, us: 1e-6 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join("") !== text) {
    throw new Error(`${what} is not a compose duration: ${text}`);
  }
  return parts.reduce((sum, [, number, unit]) => sum + Number(number) * units[unit], 0);
}

/** One Dockerfile instruction, with continuation lines joined. */
export interface DockerInstruction {
  /** Upper-cased keyword, e.g. `RUN`. */
  keyword: string;
  /** Everything after the keyword. */
  args: string;
  /** 1-based line number where the instruction starts. */
  line: number;
}

/** Splits a Dockerfile into instructions; comments and blank lines are dropped. */
export function parseDockerfile(text: string): DockerInstruction[] {
  const instructions: DockerInstruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === undefined && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
    if (pending !== undefined && line.trimStart().startsWith("#")) return;
    const continued = line.endsWith("\\");
    const body = continued ? line.slice(0, -1) : line;
    pending = pending === undefined
      ? { text: body, line: index + 1 }
      : { text: `${pending.text} ${body.trim()}`, line: pending.line };
    if (!continued) {
      const match = /^\s*(\S+)\s*(.*)$/.exec(pending.text)!;
      instructions.push({
        keyword: match[1].toUpperCase(),
        args: match[2].trim(),
        line: pending.line,
      });
      pending = undefined;
    }
  });
  return instructions;
}

/** `KEY=value` pairs of a Dockerfile `ENV` instruction (the `ENV key=value ...` form). */
export function parseDockerEnv(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [, key, value] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) {
    env[key] = value.startsWith('"') ? value.slice(1, -1) : value;
  }
  return env;
}

/** A compose port mapping in short syntax (`"8080:8080"`, `"127.0.0.1:8080:80"`). */
export interface PortMapping {
  host: number;
  container: number;
}

/** Parses the `ports` of a compose service (short syntax only, which is what we use). */
export function parsePorts(value: Yaml | undefined, what: string): PortMapping[] {
  return asArray(value, what).map((entry) => {
    const match = /^(?:[\d.]+:)?(\d+):(\d+)(?:\/tcp)?$/.exec(String(entry));
    if (match === null) {
      throw new Error(`${what}: cannot read port mapping ${JSON.stringify(entry)}`);
    }
    return { host: Number(match[1]), container: Number(match[2]) };
  });
}

/** The flags of a `deno run`/`deno compile` command line that grant permissions. */
export function permissionFlags(args: readonly string[]): string[] {
  return args.filter((arg) => /^(-A|--allow-[a-z-]+(=.*)?)$/.test(arg));
}
