/**
 * Reflection as third-party clients see it: the descriptors served, then `buf curl` (from the npm
 * cache) against a whole gRPC server on a real socket, with no `.proto` file at hand.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { create, createFileRegistry, isFieldSet } from "@bufbuild/protobuf";
import {
  FieldDescriptorProtoSchema,
  type FileDescriptorProto,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { protoPath as HEALTH_PROTO_PATH, service as healthService } from "grpc-health-check";
import { createSalesService } from "../service/sales_service.ts";
import { ResultStore } from "../storage/result_store.ts";
import { type DenoRun, runDeno } from "../_test_run_deno.ts";
import { startGrpcServer } from "./grpc_server.ts";
import { mapEntryName, reflectedFiles } from "./reflection.ts";
import { SALES_PROTO_PATH, salesServiceDefinition } from "./sales_proto.ts";

const FIXTURE_PROTO_PATH = fileURLToPath(new URL("./testdata/map_fields.proto", import.meta.url));
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The buf the project's `gen` task uses. */
const BUF = "npm:@bufbuild/buf@1.75.0";
const TOKEN = "reflection-t0ken";
/** `buf curl` exits with the gRPC status code shifted left by three bits. */
const exitCodeOf = (grpcCode: number) => grpcCode << 3;
const UNAUTHENTICATED = 16;
const DEADLINE_EXCEEDED = 4;
const UNIMPLEMENTED = 12;

function messageNamed(file: FileDescriptorProto, name: string) {
  const message = file.messageType.find((message) => message.name === name);
  assert.ok(message, `${name} in ${file.name}`);
  return message;
}

Deno.test("mapEntryName names entry types as protoc does", () => {
  assert.equal(mapEntryName("statuses"), "StatusesEntry");
  assert.equal(mapEntryName("per_department"), "PerDepartmentEntry");
  assert.equal(mapEntryName("_leading"), "LeadingEntry");
  assert.equal(mapEntryName("a__b2c"), "AB2cEntry");
});

Deno.test("reflectedFiles serves the .proto's names, fully qualified, with protoc's map entries", () => {
  const [fixture] = reflectedFiles([FIXTURE_PROTO_PATH]);
  assert.equal(fixture.package, "fixture.v1");
  const outer = messageNamed(fixture, "Outer");
  assert.deepEqual(outer.field.map((field) => [field.name, field.typeName]), [
    ["per_department", ".fixture.v1.Outer.PerDepartmentEntry"],
    ["inners", ".fixture.v1.Outer.Inner"],
    ["labels", ".fixture.v1.Outer.LabelsEntry"],
  ]);
  const entries = outer.nestedType.filter((nested) => nested.options?.mapEntry);
  assert.deepEqual(entries.map((entry) => entry.name).sort(), [
    "LabelsEntry",
    "PerDepartmentEntry",
  ]);
  const perDepartment = entries.find((entry) => entry.name === "PerDepartmentEntry")!;
  assert.equal(perDepartment.field[1].typeName, ".fixture.v1.Outer.Inner");
  // A scalar field has no type name at all, not an empty one: Go clients refuse an empty one.
  const count = messageNamed(fixture, "Outer").nestedType.find((n) => n.name === "Inner")!.field[0];
  assert.equal(isFieldSet(count, FieldDescriptorProtoSchema.field.typeName), false);
  assert.equal(fixture.service[0].method[0].outputType, ".fixture.v1.Outer.Inner");

  // The service's own files: snake_case names as written, and a set a registry accepts whole.
  const files = reflectedFiles([SALES_PROTO_PATH, HEALTH_PROTO_PATH]);
  const sales = files.find((file) => file.package === "sales.v1")!;
  assert.ok(messageNamed(sales, "UploadResponse").field.some((f) => f.name === "bad_rows"));
  const health = files.find((file) => file.package === "grpc.health.v1")!;
  assert.equal(
    messageNamed(health, "HealthListResponse").field[0].typeName,
    ".grpc.health.v1.HealthListResponse.StatusesEntry",
  );
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: files }));
  assert.ok(registry.getService("sales.v1.SalesService"));
  assert.ok(registry.getService("grpc.health.v1.Health"));
});

/** Runs `buf curl` over plain-text HTTP/2 with the gRPC protocol, the schema from reflection only. */
function bufCurl(args: string[]): Promise<DenoRun> {
  return runDeno(
    ["run", "-A", BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args],
    { cwd: REPO_ROOT },
  );
}

/** The one JSON response of a call that must succeed. */
function responseOf(result: DenoRun): Record<string, unknown> {
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

const base64 = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
const fromBase64 = (data: string) =>
  new TextDecoder().decode(Uint8Array.from(atob(data), (char) => char.charCodeAt(0)));

Deno.test({
  name: "startGrpcServer offers reflection: buf curl lists and calls every method with no .proto",
  async fn() {
    const storageDir = await Deno.makeTempDir({ prefix: "reflection_test_" });
    const service = createSalesService({
      store: await ResultStore.open(storageDir),
      publicResultsUrl: "http://localhost:8080",
    });
    const server = await startGrpcServer(service, { port: 0, apiToken: TOKEN });
    const url = `http://127.0.0.1:${server.port}`;
    const auth = ["-H", `authorization: Bearer ${TOKEN}`];
    const called = new Set<string>();
    const call = (method: string, args: string[] = []) => {
      called.add(method);
      return bufCurl([...args, `${url}/${method}`]);
    };
    try {
      // Reflection itself needs no token, like health: nothing below sends one to it.
      const listed = await bufCurl(["--list-methods", url]);
      assert.equal(listed.code, 0, listed.stderr);
      const expected = [
        ...Object.values(salesServiceDefinition()),
        ...Object.values(healthService),
      ].map((method) => method.path.slice(1)).sort();
      assert.deepEqual(listed.stdout.trim().split("\n").sort(), expected);
      // Some clients still speak only the older v1alpha protocol.
      const listedAlpha = await bufCurl([
        "--list-methods",
        "--reflect-protocol",
        "grpc-v1alpha",
        url,
      ]);
      assert.equal(listedAlpha.stdout, listed.stdout, listedAlpha.stderr);

      assert.deepEqual(responseOf(await call("grpc.health.v1.Health/Check")), {
        status: "SERVING",
      });
      // A map field: only served right once the descriptors are canonical.
      const statuses = responseOf(await call("grpc.health.v1.Health/List")).statuses;
      assert.deepEqual(statuses, {
        "": { status: "SERVING" },
        "sales.v1.SalesService": { status: "SERVING" },
      });
      const watch = await call("grpc.health.v1.Health/Watch", ["--timeout", "1s"]);
      assert.equal(watch.code, exitCodeOf(DEADLINE_EXCEEDED), watch.stderr);
      assert.match(watch.stdout, /"status": "SERVING"/);

      const csv = "Department Name,Date,Number of Sales\n" +
        "Toys,2024-01-02,3\nGarden,2024-01-03,4\nToys,2024-01-04,5\nToys,2024-13-01,1\n";
      const upload = JSON.stringify({ data: base64(csv), filename: "x.csv" });
      const refused = await call("sales.v1.SalesService/UploadCSV", ["-d", upload]);
      assert.equal(refused.code, exitCodeOf(UNAUTHENTICATED), refused.stderr);
      const uploaded = responseOf(
        await call("sales.v1.SalesService/UploadCSV", [...auth, "-d", upload]),
      );
      assert.equal(uploaded.rows, "4");
      assert.equal(uploaded.badRows, "1");
      assert.equal(uploaded.departments, "2");
      const downloaded = responseOf(
        await call("sales.v1.SalesService/DownloadResult", [
          ...auth,
          "-d",
          JSON.stringify({ result_id: uploaded.resultId }),
        ]),
      );
      const totals = fromBase64(downloaded.data as string).trim().split("\n").slice(1);
      assert.deepEqual(totals, ["Garden,4", "Toys,8"]);

      // Client streaming: several JSON messages, one after the other.
      const half = csv.indexOf("Garden");
      const streamed = responseOf(
        await call("sales.v1.SalesService/UploadCSVStream", [
          ...auth,
          "-d",
          `${JSON.stringify({ data: base64(csv.slice(0, half)), filename: "x.csv" })}\n` +
          JSON.stringify({ data: base64(csv.slice(half)) }),
        ]),
      );
      assert.equal(streamed.rows, "4");

      const bytes = new TextEncoder().encode(csv).length;
      const start = () =>
        call("sales.v1.SalesService/StartUpload", [
          ...auth,
          "-d",
          JSON.stringify({ filename: "x.csv", size: String(bytes) }),
        ]).then(responseOf);
      const { uploadId } = await start();
      const appended = responseOf(
        await call("sales.v1.SalesService/AppendUpload", [
          ...auth,
          "-d",
          JSON.stringify({ uploadId, offset: "0", data: base64(csv) }),
        ]),
      );
      assert.equal(appended.committedOffset, String(bytes));
      const finished = responseOf(
        await call("sales.v1.SalesService/FinishUpload", [
          ...auth,
          "-d",
          JSON.stringify({ uploadId }),
        ]),
      );
      assert.equal(finished.departments, "2");
      const second = await start();
      assert.deepEqual(
        responseOf(
          await call("sales.v1.SalesService/CancelUpload", [
            ...auth,
            "-d",
            JSON.stringify({ uploadId: second.uploadId }),
          ]),
        ),
        {},
      );
      assert.equal(service.uploadsInProgress, 0);

      // Methods this test does not know yet still resolve from reflection alone and reach a handler.
      for (const method of expected.filter((method) => !called.has(method))) {
        const result = await call(method, [...auth, "-d", "{}"]);
        assert.ok(
          result.code === 0 || (result.code >= 8 && result.code !== exitCodeOf(UNIMPLEMENTED)),
          `${method}: exit ${result.code}: ${result.stderr}`,
        );
      }
    } finally {
      await server.shutdown(100);
      service.close();
      await Deno.remove(storageDir, { recursive: true });
    }
  },
});
