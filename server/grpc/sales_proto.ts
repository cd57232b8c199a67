/**
 * `proto/sales.proto` loaded with `@grpc/proto-loader`, shared by the server and the client so both
 * see the same wire shapes: camelCase fields, uint64 as decimal strings (`longs: String`), bytes as
 * `Buffer` (a `Uint8Array`), and defaults for absent fields.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

/** The proto file, found relative to this module so any working directory works. */
export const SALES_PROTO_PATH = fileURLToPath(new URL("../../proto/sales.proto", import.meta.url));

/** Fully qualified service name, as health checks and reflection know it. */
export const SALES_SERVICE_NAME = "sales.v1.SalesService";

/** Options every loader of sales.proto uses; uint64 fields travel as strings, converted at the adapter. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** `UploadResponse` on the wire. */
export interface WireUploadResponse {
  resultId: string;
  downloadUrl: string;
  rows: string;
  badRows: string;
  departments: string;
  elapsedSec: number;
  badRowSamples: { line: string; reason: string; raw: string }[];
}

/** `GetResultResponse` on the wire. */
export interface WireGetResultResponse {
  resultId: string;
  downloadUrl: string;
  filename: string;
  downloadFilename: string;
  rows: string;
  badRows: string;
  departments: string;
  badRowSamples: { line: string; reason: string; raw: string }[];
  createdAt: string;
  sizeBytes: string;
  hasMetadata: boolean;
}

/** `UploadRequest` and `UploadChunk` on the wire. */
export interface WireUploadChunk {
  data: Uint8Array;
  filename: string;
}

/** `AppendUploadResponse` on the wire. */
export interface WireAppendUploadResponse {
  committedOffset: string;
  rows: string;
  badRows: string;
}

let cached: grpc.ServiceDefinition | undefined;

/** The `sales.v1.SalesService` definition, loaded once. */
export function salesServiceDefinition(): grpc.ServiceDefinition {
  if (cached === undefined) {
    const packageDefinition = protoLoader.loadSync(SALES_PROTO_PATH, PROTO_LOADER_OPTIONS);
    const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
      sales: { v1: { SalesService: grpc.ServiceClientConstructor } };
    };
    cached = loaded.sales.v1.SalesService.service;
  }
  return cached;
}

/** The grpc-js client constructor for `sales.v1.SalesService`. */
export function salesClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(salesServiceDefinition(), "SalesService");
}
