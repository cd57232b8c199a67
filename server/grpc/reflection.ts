/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) with `@grpc/reflection`, so that
 * `grpcurl`, `buf curl`, Postman and grpcui list and call every method with no `.proto` file at
 * hand.
 *
 * The descriptors come from the same `.proto` files the server loads, read with their own field
 * names (`bad_rows`, not `badRows`), and are made canonical before they are served: protobufjs
 * names a map field's entry type after the field (`Statuses`) where protoc and every Go client
 * expect `StatusesEntry`, and leaves type names relative. `buf curl` and `grpcurl` refuse such a
 * file ("incorrect implicit map entry name"), which made `grpc.health.v1.Health` unusable.
 *
 * @example
 * ```ts
 * import * as grpc from "@grpc/grpc-js";
 * import { addReflection } from "./reflection.ts";
 * import { SALES_PROTO_PATH } from "./sales_proto.ts";
 *
 * const server = new grpc.Server();
 * addReflection(server, [SALES_PROTO_PATH]);
 * ```
 *
 * @module
 */

import type * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { AppError, Status } from "../errors.ts";

/** The package definition `ReflectionService` reads: anything carrying `fileDescriptorProtos`. */
type DescriptorSources = ConstructorParameters<typeof ReflectionService>[0];

/**
 * Adds the reflection services to `server`, describing every service in `protoPaths` (the same
 * files the server loads its services from). `addService` lets the caller wrap the reflection
 * services as it wraps its own.
 */
export function addReflection(
  server: Pick<grpc.Server, "addService">,
  protoPaths: readonly string[],
): void {
  const files = reflectedFiles(protoPaths).map((file) => toBinary(FileDescriptorProtoSchema, file));
  const sources = { files: { fileDescriptorProtos: files } };
  new ReflectionService(sources as unknown as DescriptorSources).addToServer(server as grpc.Server);
}

/**
 * The file descriptors reflection serves for `protoPaths`: loaded with `@grpc/proto-loader`
 * keeping the `.proto` names, then {@linkcode canonicalizeDescriptors canonical}.
 */
export function reflectedFiles(protoPaths: readonly string[]): FileDescriptorProto[] {
  const files = new Map<string, FileDescriptorProto>();
  for (const path of protoPaths) {
    let definition: protoLoader.PackageDefinition;
    try {
      definition = protoLoader.loadSync(path, { keepCase: true });
    } catch (error) {
      throw new AppError(
        Status.INTERNAL,
        `Cannot load ${path} for gRPC reflection: ${(error as Error).message}`,
        { cause: error },
      );
    }
    // proto-loader gives every message type the descriptors of all the files loaded with it.
    for (const entry of Object.values(definition)) {
      const encoded = (entry as { fileDescriptorProtos?: Uint8Array[] }).fileDescriptorProtos;
      for (const bytes of encoded ?? []) {
        const file = fromBinary(FileDescriptorProtoSchema, bytes);
        if (!files.has(file.name)) files.set(file.name, file);
      }
    }
  }
  const canonical = [...files.values()];
  canonicalizeDescriptors(canonical);
  return canonical;
}

/**
 * Rewrites `files` in place as protoc would have written them: every type reference fully
 * qualified (`.pkg.Message`), and each map field's entry type named `<FieldInCamelCase>Entry`.
 */
export function canonicalizeDescriptors(files: FileDescriptorProto[]): void {
  const known = new Set<string>();
  const messages: { scope: string; message: DescriptorProto }[] = [];
  const indexMessages = (scope: string, list: DescriptorProto[], enums: EnumDescriptorProto[]) => {
    for (const enumType of enums) known.add(`${scope}.${enumType.name}`);
    for (const message of list) {
      const name = `${scope}.${message.name}`;
      known.add(name);
      messages.push({ scope: name, message });
      indexMessages(name, message.nestedType, message.enumType);
    }
  };
  for (const file of files) {
    indexMessages(file.package ? `.${file.package}` : "", file.messageType, file.enumType);
  }

  /** Protobuf scoping: the innermost enclosing scope that has the name wins. */
  const qualify = (name: string, scope: string): string => {
    if (name === "" || name.startsWith(".")) return name;
    for (let outer = scope;; outer = outer.slice(0, Math.max(0, outer.lastIndexOf(".")))) {
      const candidate = `${outer}.${name}`;
      if (known.has(candidate)) return candidate;
      if (outer === "") return name;
    }
  };
  // descriptor.proto is proto2: assigning even "" to an absent field would make it present.
  const qualifyFields = (fields: FieldDescriptorProto[], scope: string) => {
    for (const field of fields) {
      if (field.typeName !== "") field.typeName = qualify(field.typeName, scope);
      if (field.extendee !== "") field.extendee = qualify(field.extendee, scope);
    }
  };
  for (const file of files) {
    const scope = file.package ? `.${file.package}` : "";
    qualifyFields(file.extension, scope);
    for (const service of file.service) {
      for (const method of service.method) {
        method.inputType = qualify(method.inputType, scope);
        method.outputType = qualify(method.outputType, scope);
      }
    }
  }
  for (const { scope, message } of messages) {
    qualifyFields(message.field, scope);
    qualifyFields(message.extension, scope);
  }

  // Only the map field itself refers to its entry type, so renaming both is enough.
  for (const { scope, message } of messages) {
    for (const field of message.field) {
      const entry = message.nestedType.find((nested) =>
        nested.options?.mapEntry === true && field.typeName === `${scope}.${nested.name}`
      );
      if (entry === undefined) continue;
      entry.name = mapEntryName(field.name);
      field.typeName = `${scope}.${entry.name}`;
    }
  }
}

/** protoc's name for a map field's entry type: `foo_bar` → `FooBarEntry`. */
export function mapEntryName(fieldName: string): string {
  return fieldName.split("_").map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join(
    "",
  ) + "Entry";
}
