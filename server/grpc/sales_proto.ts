/**
 * `proto/sales.proto` loaded with `@grpc/proto-loader`, shared by the server and the client so both
 * see the same wire shapes: camelCase fields, uint64 as decimal strings (`longs: String`), bytes as
 * `Buffer` (a `Uint8Array`), and defaults for absent fields. Their TypeScript types are generated
 * with the same options by `deno task gen` (`gen/proto_loader/`, from `proto-loader-gen-types`).
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import type { ProtoGrpcType } from "../../gen/proto_loader/sales.ts";
import type {
  SalesServiceClient,
  SalesServiceDefinition,
} from "../../gen/proto_loader/sales/v1/SalesService.ts";

/** The proto file, found relative to this module so any working directory works. */
export const SALES_PROTO_PATH = fileURLToPath(new URL("../../proto/sales.proto", import.meta.url));

/** Fully qualified service name, as health checks and reflection know it. */
export const SALES_SERVICE_NAME = "sales.v1.SalesService";

/**
 * Options every loader of sales.proto uses; uint64 fields travel as strings, converted at the
 * adapter. The `gen` task in deno.json passes the same ones to `proto-loader-gen-types`.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

let cached: ProtoGrpcType | undefined;

function loaded(): ProtoGrpcType {
  if (cached === undefined) {
    const packageDefinition = protoLoader.loadSync(SALES_PROTO_PATH, PROTO_LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType;
  }
  return cached;
}

/** The `sales.v1.SalesService` definition, loaded once. */
export function salesServiceDefinition(): SalesServiceDefinition {
  return loaded().sales.v1.SalesService.service;
}

/** Creates a grpc-js client for `sales.v1.SalesService`, typed by the generated definitions. */
export function createSalesServiceClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
): SalesServiceClient {
  return new (loaded().sales.v1.SalesService)(address, credentials, options);
}
