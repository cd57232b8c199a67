/**
 * Checks an Envoy bootstrap config (parsed YAML) against Envoy's own v3 API: the `.proto` files of
 * Envoy's data-plane API that `@grpc/grpc-js-xds` ships under `deps/` (with `xds`,
 * `protoc-gen-validate` and `googleapis`), loaded with protobufjs. No Envoy runs on our machines, so
 * this stands in for `envoy --mode validate` on everything the API itself says:
 *
 * - every key is a field of its message (proto field names, as Envoy's YAML uses them);
 * - each `@type` of a `google.protobuf.Any` (every `typed_config`) names a message, which its
 *   other keys are then checked against;
 * - values have their field's type; enum values exist; durations are protobuf JSON (`"10s"`);
 * - a oneof holds at most one member, and exactly one when the API requires it;
 * - fields, enum values and messages marked deprecated are refused;
 * - the `validate.rules` that say "required" or "not empty" hold (message, duration and any
 *   `required`, string and bytes `min_len`, repeated `min_items`), as do numeric bounds.
 *
 * Limits: the protos are the snapshot in the pinned package, which can lag the Envoy image in
 * compose.yaml; a field added later is refused here, and a field deprecated later is not caught.
 *
 * @example
 * ```ts
 * import { loadEnvoySchema } from "./_envoy_schema.ts";
 *
 * const schema = await loadEnvoySchema();
 * const problems = schema.check({ admin: { access_log_path: "/dev/null" } });
 * if (!problems[0].startsWith("admin.access_log_path: ")) throw new Error(problems.join("\n"));
 * ```
 *
 * @module
 */

import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
// protobufjs is CommonJS: Deno offers its exports as the default export only.
import protobuf from "protobufjs";
import type { Field, OneOf, ReflectionObject } from "protobufjs";
// Imported only so that Deno installs the package; its .proto files are then read from its folder.
import "@grpc/grpc-js-xds/package.json" with { type: "json" };
import { formatPath, type YamlPath } from "./_deploy_files.ts";

/** The message at the top of every Envoy config file. */
export const BOOTSTRAP_TYPE = "envoy.config.bootstrap.v3.Bootstrap";

/** What `check` reports: one line per problem, `<path>: <reason>`. */
export interface EnvoySchema {
  /** Problems in `config` read as a message of `typeName`; empty when it is valid. */
  check(config: unknown, typeName?: string): string[];
}

/** The folders that hold the API's `.proto` files, in import-resolution order. */
function protoFolders(): string[] {
  const xds = fileURLToPath(new URL(".", import.meta.resolve("@grpc/grpc-js-xds/package.json")));
  // protobufjs bundles google/protobuf/descriptor.proto, which Envoy's annotations extend.
  const protobufjs = fileURLToPath(new URL(".", import.meta.resolve("protobufjs")));
  return [
    ...["envoy-api", "xds", "protoc-gen-validate", "googleapis"].map((dep) => `${xds}deps/${dep}/`),
    protobufjs,
  ];
}

let schemaPromise: Promise<EnvoySchema> | undefined;

/** Loads Envoy's v3 API once per process and returns a checker for it. */
export function loadEnvoySchema(): Promise<EnvoySchema> {
  schemaPromise ??= Promise.resolve().then(() => new EnvoyApi(protoFolders()));
  return schemaPromise;
}

const { Enum, MapField, Root, Type } = protobuf;
type Enum = protobuf.Enum;
type Type = protobuf.Type;

const TYPE_URL_PREFIX = "type.googleapis.com/";
const WRAPPERS = new Set(
  ["Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"].map((name) =>
    `.google.protobuf.${name}Value`
  ),
);
/** Well-known types whose JSON form is not a mapping of their fields. */
const SPECIAL_JSON = new Set(
  ["Any", "Duration", "Timestamp", "FieldMask", "Struct", "Value", "ListValue"].map((name) =>
    `.google.protobuf.${name}`
  ),
);
/** Rule options that make a message-typed field mandatory. */
const REQUIRED_RULES = ["message", "duration", "timestamp", "any"].map((kind) =>
  `(validate.rules).${kind}.required`
);
const NUMERIC_BOUND =
  /^\(validate\.rules\)\.(?:u?int(?:32|64)|s?fixed(?:32|64)|sint(?:32|64)|double|float)\.(gt|gte|lt|lte)$/;
const INT_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

type Options = Record<string, unknown> | undefined;

/** Envoy's v3 API, loaded lazily: a package's folder is read the first time a type needs it. */
class EnvoyApi implements EnvoySchema {
  readonly #folders: readonly string[];
  readonly #root = new Root();
  readonly #loadedFolders = new Set<string>();

  constructor(folders: readonly string[]) {
    this.#folders = folders;
    this.#root.resolvePath = (_origin, target) =>
      this.#folders.map((folder) => folder + target).find((path) => existsSync(path)) ?? target;
    this.#lookup(BOOTSTRAP_TYPE);
  }

  check(config: unknown, typeName = BOOTSTRAP_TYPE): string[] {
    const type = this.#lookup(typeName);
    if (!(type instanceof Type)) return [`${typeName} is not a message of Envoy's API`];
    const problems: string[] = [];
    this.#message(type, config, [], problems);
    return problems;
  }

  /** The type or enum named `fullName` (no leading dot), loading its package's folder if needed. */
  #lookup(fullName: string): Type | Enum | undefined {
    const find = () => {
      try {
        return this.#root.lookupTypeOrEnum(fullName);
      } catch {
        return undefined;
      }
    };
    const found = find();
    if (found !== undefined) return found;
    // Envoy's API keeps package a.b.v3 in folder a/b/v3/; a nested message adds name parts.
    const parts = fullName.split(".");
    for (let length = parts.length - 1; length > 0; length--) {
      const folder = parts.slice(0, length).join("/");
      if (this.#loadFolder(folder)) {
        const loaded = find();
        if (loaded !== undefined) return loaded;
      }
    }
    return undefined;
  }

  #loadFolder(folder: string): boolean {
    if (this.#loadedFolders.has(folder)) return false;
    this.#loadedFolders.add(folder);
    const files = this.#folders.flatMap((base) =>
      existsSync(base + folder)
        ? readdirSync(base + folder).filter((name) => name.endsWith(".proto")).map((name) =>
          `${base}${folder}/${name}`
        )
        : []
    );
    if (files.length === 0) return false;
    this.#root.loadSync(files, { keepCase: true });
    this.#root.resolveAll();
    return true;
  }

  #message(type: Type, value: unknown, path: YamlPath, out: string[]): void {
    const where = formatPath(path) || "(top level)";
    const name = type.fullName.slice(1);
    if (isDeprecated(type.options)) out.push(`${where}: ${name} is deprecated in Envoy's v3 API`);
    switch (type.fullName) {
      case ".google.protobuf.Duration":
        if (typeof value !== "string" || !/^-?\d+(\.\d{1,9})?s$/.test(value)) {
          out.push(`${where}: expected a duration such as "10s" or "0.25s", got ${show(value)}`);
        }
        return;
      case ".google.protobuf.Timestamp":
        if (typeof value !== "string" || Number.isNaN(Date.parse(value))) {
          out.push(`${where}: expected an RFC 3339 timestamp, got ${show(value)}`);
        }
        return;
      case ".google.protobuf.FieldMask":
        if (typeof value !== "string") out.push(`${where}: expected a field mask string`);
        return;
      case ".google.protobuf.Value":
        return;
      case ".google.protobuf.ListValue":
        if (!Array.isArray(value)) out.push(`${where}: expected a sequence, got ${show(value)}`);
        return;
      case ".google.protobuf.Struct":
        if (!isMapping(value)) out.push(`${where}: expected a mapping, got ${show(value)}`);
        return;
      case ".google.protobuf.Any":
        this.#any(value, path, out);
        return;
    }
    if (WRAPPERS.has(type.fullName)) {
      this.#scalar(type.fields.value.type, value, path, out);
      return;
    }
    if (!isMapping(value)) {
      out.push(`${where}: expected a mapping (${name}), got ${show(value)}`);
      return;
    }
    this.#fields(type, value, path, out);
  }

  #fields(type: Type, value: Record<string, unknown>, path: YamlPath, out: string[]): void {
    const name = type.fullName.slice(1);
    const setMembers = new Map<OneOf, string>();
    for (const [key, child] of Object.entries(value)) {
      const fieldPath = [...path, key];
      const where = formatPath(fieldPath);
      const field = type.fields[key];
      if (field === undefined) {
        out.push(`${where}: ${unknownFieldReason(type, key)}`);
        continue;
      }
      if (isDeprecated(field.options)) {
        out.push(`${where}: ${name}.${key} is deprecated in Envoy's v3 API${since(field.options)}`);
      }
      if (child === null || child === undefined) continue;
      const oneof = field.partOf;
      if (oneof !== null) {
        const other = setMembers.get(oneof);
        if (other !== undefined) {
          out.push(
            `${where}: ${other} and ${key} are both set, but oneof ${oneof.name} of ${name} holds at most one`,
          );
        }
        setMembers.set(oneof, key);
      }
      this.#field(field, child, fieldPath, out);
    }
    // Rules that an absent field breaks: required messages, and non-empty strings and lists
    // (proto3 scalars have no presence, so an absent string is "" and fails min_len).
    for (const field of type.fieldsArray) {
      const present = value[field.name] !== undefined && value[field.name] !== null;
      if (present || field.partOf !== null) continue;
      const options = field.options as Options;
      const where = formatPath([...path, field.name]);
      if (REQUIRED_RULES.some((rule) => options?.[rule] === true)) {
        out.push(`${where}: missing, and ${name}.${field.name} is required`);
      } else if (minimum(options, field) > 0) {
        out.push(`${where}: missing, and ${name}.${field.name} must not be empty`);
      }
    }
    for (const oneof of type.oneofsArray) {
      const options = oneof.options as Options;
      if (options?.["(validate.required)"] === true && !setMembers.has(oneof)) {
        out.push(
          `${formatPath(path) || "(top level)"}: one of ${
            oneof.oneof.join(", ")
          } is required (oneof ${oneof.name} of ${name})`,
        );
      }
    }
  }

  #field(field: Field, value: unknown, path: YamlPath, out: string[]): void {
    const where = formatPath(path);
    if (field instanceof MapField) {
      if (!isMapping(value)) {
        out.push(`${where}: expected a mapping, got ${show(value)}`);
        return;
      }
      for (const [key, item] of Object.entries(value)) {
        if (field.keyType !== "string" && field.keyType !== "bool" && !/^-?\d+$/.test(key)) {
          out.push(`${formatPath([...path, key])}: map key must be a ${field.keyType}`);
        }
        this.#single(field, item, [...path, key], out);
      }
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) {
        out.push(`${where}: expected a sequence, got ${show(value)}`);
        return;
      }
      const least = minimum(field.options as Options, field);
      if (value.length < least) {
        out.push(`${where}: needs at least ${least} item${least === 1 ? "" : "s"}`);
      }
      value.forEach((item, index) => this.#single(field, item, [...path, index], out));
      return;
    }
    this.#single(field, value, path, out);
  }

  /** One value of `field` (an element, for repeated and map fields). */
  #single(field: Field, value: unknown, path: YamlPath, out: string[]): void {
    const resolved = field.resolvedType as ReflectionObject | null;
    if (resolved instanceof Type) {
      this.#message(resolved, value, path, out);
    } else if (resolved instanceof Enum) {
      this.#enum(resolved, value, path, out);
    } else {
      this.#scalar(field.type, value, path, out);
    }
    const options = field.options as Options;
    if (field.repeated || field instanceof MapField || options === undefined) return;
    const where = formatPath(path);
    if (typeof value === "string" && minimum(options, field) > value.length) {
      out.push(`${where}: must not be empty`);
    }
    for (const [rule, bound] of Object.entries(options)) {
      const match = NUMERIC_BOUND.exec(rule);
      const number = typeof value === "string" ? Number(value) : value;
      // A value of the wrong type was reported above; bounds apply to numbers only.
      if (match === null || typeof number !== "number" || Number.isNaN(number)) continue;
      if (typeof bound !== "number") continue;
      const ok =
        { gt: number > bound, gte: number >= bound, lt: number < bound, lte: number <= bound }[
          match[1] as "gt" | "gte" | "lt" | "lte"
        ];
      if (!ok) out.push(`${where}: must be ${match[1]} ${bound}, got ${number}`);
    }
  }

  #enum(type: Enum, value: unknown, path: YamlPath, out: string[]): void {
    const where = formatPath(path);
    const name = typeof value === "number"
      ? Object.keys(type.values).find((key) => type.values[key] === value)
      : typeof value === "string" && Object.hasOwn(type.values, value)
      ? value
      : undefined;
    if (name === undefined) {
      out.push(
        `${where}: ${show(value)} is not a value of ${type.fullName.slice(1)} (one of ${
          Object.keys(type.values).join(", ")
        })`,
      );
      return;
    }
    const options = type.valuesOptions?.[name] as Options;
    if (isDeprecated(options)) {
      out.push(
        `${where}: ${type.fullName.slice(1)}.${name} is deprecated in Envoy's v3 API${
          since(options)
        }`,
      );
    }
  }

  #scalar(kind: string, value: unknown, path: YamlPath, out: string[]): void {
    const where = formatPath(path);
    const range = INT_RANGES[kind];
    if (range !== undefined) {
      const text = typeof value === "number" ? String(value) : value;
      if (typeof text !== "string" || !/^-?\d+$/.test(text)) {
        out.push(`${where}: expected a whole number (${kind}), got ${show(value)}`);
      } else if (BigInt(text) < range[0] || BigInt(text) > range[1]) {
        out.push(`${where}: ${text} is out of range for ${kind}`);
      }
      return;
    }
    const ok = kind === "string"
      ? typeof value === "string"
      : kind === "bool"
      ? typeof value === "boolean"
      : kind === "bytes"
      ? typeof value === "string" && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value)
      : kind === "double" || kind === "float"
      ? typeof value === "number" ||
        (typeof value === "string" && /^(-?Infinity|NaN|-?\d+(\.\d+)?([eE][-+]?\d+)?)$/.test(value))
      : false;
    if (!ok) out.push(`${where}: expected a ${kind}, got ${show(value)}`);
  }

  /** A `google.protobuf.Any`: `@type` names the message that the other keys are checked against. */
  #any(value: unknown, path: YamlPath, out: string[]): void {
    const where = formatPath(path);
    if (!isMapping(value)) {
      out.push(`${where}: expected a mapping with an @type, got ${show(value)}`);
      return;
    }
    const typeUrl = value["@type"];
    if (typeof typeUrl !== "string" || !typeUrl.startsWith(TYPE_URL_PREFIX)) {
      out.push(`${where}: @type must be "${TYPE_URL_PREFIX}<message>", got ${show(typeUrl)}`);
      return;
    }
    const typeName = typeUrl.slice(TYPE_URL_PREFIX.length);
    const type = this.#lookup(typeName);
    if (!(type instanceof Type)) {
      out.push(`${formatPath([...path, "@type"])}: ${typeName} is not a message of Envoy's API`);
      return;
    }
    const { "@type": _typeUrl, ...rest } = value;
    // Well-known types with a JSON form of their own keep it under "value" inside an Any.
    const special = WRAPPERS.has(type.fullName) || SPECIAL_JSON.has(type.fullName);
    if (special) {
      this.#message(type, rest.value, [...path, "value"], out);
    } else {
      this.#message(type, rest, path, out);
    }
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function show(value: unknown): string {
  return value === undefined ? "nothing" : JSON.stringify(value);
}

/** Deprecated the protobuf way, or by Envoy's own annotation. */
function isDeprecated(options: Options): boolean {
  return options?.deprecated === true ||
    options?.["(envoy.annotations.deprecated_at_minor_version)"] !== undefined ||
    options?.["(envoy.annotations.deprecated_at_minor_version_enum)"] !== undefined;
}

function since(options: Options): string {
  const version = options?.["(envoy.annotations.deprecated_at_minor_version)"] ??
    options?.["(envoy.annotations.deprecated_at_minor_version_enum)"];
  return version === undefined ? "" : ` (since API ${version})`;
}

/** The least length a string, bytes or repeated field may have under its rules; 0 when none. */
function minimum(options: Options, field: Field): number {
  if (options === undefined) return 0;
  const kind = field.repeated ? "repeated" : field.type === "bytes" ? "bytes" : "string";
  if (options[`(validate.rules).${kind}.ignore_empty`] === true) return 0;
  const rule = field.repeated ? "min_items" : "min_len";
  const least = options[`(validate.rules).${kind}.${rule}`];
  return typeof least === "number" ? least : 0;
}

/** Why `key` is not a field of `type`, with the nearest real name when there is one. */
function unknownFieldReason(type: Type, key: string): string {
  const name = type.fullName.slice(1);
  if (type.reserved?.includes(key)) {
    return `${name} no longer has ${key}: it was removed from Envoy's v3 API`;
  }
  const snake = key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
  if (snake !== key && type.fields[snake] !== undefined) {
    return `write ${key} as ${snake}, the proto field name`;
  }
  const nearest = type.fieldsArray.map((field) => field.name)
    .map((candidate) => ({ candidate, distance: editDistance(key, candidate) }))
    .sort((a, b) => a.distance - b.distance)[0];
  const hint = nearest !== undefined && nearest.distance <= 2
    ? `; did you mean ${nearest.candidate}?`
    : "";
  return `${name} has no field ${key}${hint}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}
