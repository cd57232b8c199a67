import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { AppError, Status } from "../errors.ts";
import { RecordingLogger } from "../_test_recording_logger.ts";
import { createFakeSalesService } from "../web/_test_fake_sales_service.ts";
import { startGrpcServer } from "./grpc_server.ts";
import { GrpcSalesClient } from "./sales_client.ts";

/** A grpc-js server for the fake service, logging into a recording logger, and a client. */
async function startFakeServer() {
  const { service: fake } = createFakeSalesService({ chunkSize: 8 });
  const service = {
    ...fake,
    cancelUpload: () =>
      Promise.reject(
        new AppError(Status.RESOURCE_EXHAUSTED, "Too many calls: try again", {
          retryAfterMs: 1499.2,
        }),
      ),
  };
  const logger = new RecordingLogger();
  const server = await startGrpcServer(service, { port: 0, logger, tuneHttp2: false });
  const client = new GrpcSalesClient(`127.0.0.1:${server.port}`);
  return {
    logger,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await server.shutdown(100);
    },
  };
}

/** A failed call's status and response headers, through the raw grpc-js client. */
function failedCall(
  client: GrpcSalesClient,
  method: string,
  request: unknown,
): Promise<{ status: grpc.ServiceError; headers: grpc.Metadata | undefined }> {
  const metadata = new grpc.Metadata();
  metadata.set("x-request-id", "test-request");
  return new Promise((resolve, reject) => {
    let headers: grpc.Metadata | undefined;
    const call = client.raw[method](request, metadata, (error: grpc.ServiceError | null) => {
      if (error === null) reject(new Error(`${method} succeeded`));
      else resolve({ status: error, headers });
    });
    call.on("metadata", (received: grpc.Metadata) => headers = received);
  });
}

Deno.test({
  name: "createErrorInterceptor maps each failure once and logs only unexpected ones",
  async fn(t) {
    await using s = await startFakeServer();
    await t.step(
      "an unexpected error is INTERNAL, hidden, and logged with the method",
      async () => {
        s.logger.entries.length = 0;
        const { status, headers } = await failedCall(s.client, "UploadCSV", {
          data: new Uint8Array(1),
          filename: "crash.csv",
        });
        assert.equal(status.code, Status.INTERNAL);
        assert.equal(status.details, "Internal server error");
        assert.deepEqual(headers?.get("x-request-id"), ["test-request"]);
        assert.deepEqual(
          s.logger.entries.map((entry) => `${entry.level} ${entry.message}`),
          ["error /sales.v1.SalesService/UploadCSV failed:"],
        );
        assert.equal((s.logger.entries[0].details[0] as Error).message, "secret internal detail");
      },
    );
    await t.step("an AppError keeps its code and message and is not logged", async () => {
      s.logger.entries.length = 0;
      const { status, headers } = await failedCall(s.client, "FinishUpload", { uploadId: "nope" });
      assert.equal(status.code, Status.NOT_FOUND);
      assert.equal(status.details, "Upload nope not found");
      assert.deepEqual(headers?.get("x-request-id"), ["test-request"]);
      assert.deepEqual(s.logger.entries, []);
    });
    await t.step("a retry hint becomes a grpc-retry-pushback-ms trailer", async () => {
      const { status } = await failedCall(s.client, "CancelUpload", { uploadId: "u" });
      assert.equal(status.code, Status.RESOURCE_EXHAUSTED);
      assert.equal(status.details, "Too many calls: try again");
      assert.deepEqual(status.metadata.get("grpc-retry-pushback-ms"), ["1500"]);
    });
    await t.step(
      "a uint64 past 2^53 - 1 is INVALID_ARGUMENT naming the field and method",
      async () => {
        const { status } = await failedCall(s.client, "AppendUpload", {
          uploadId: "nope",
          offset: "18446744073709551615",
          data: new Uint8Array(1),
        });
        assert.equal(status.code, Status.INVALID_ARGUMENT);
        assert.match(status.details, /^Invalid offset in AppendUpload: 18446744073709551615 /);
        await assert.rejects(
          s.client.startUpload("a.csv", 2 ** 53),
          (error: unknown) =>
            error instanceof AppError && error.code === Status.INVALID_ARGUMENT &&
            /size in StartUpload/.test(error.message),
        );
      },
    );
  },
});
