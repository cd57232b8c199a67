/**
 * The token check reads nothing: a whole server (`server/main.ts`) runs as a child process with
 * `SALES_API_TOKEN` set, 16 clients each try to send a 60 MiB `UploadCSV` without a token, and the
 * child's peak resident memory (VmHWM, Linux) must not grow with what they send.
 */

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { Status } from "../errors.ts";
import { startServerChild } from "../_test_server_child.ts";
import { lengthPrefix, rawCall } from "./_test_raw_grpc.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MIB = 1024 * 1024;
const CALLS = 16;
const MESSAGE_BYTES = 60 * MIB;

/** A `/proc/<pid>/status` field in bytes. */
async function procStatusBytes(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status)?.[1];
  assert.ok(kib !== undefined, `no ${field} in /proc/${pid}/status`);
  return Number(kib) * 1024;
}

/** Sends `bytes` of body in 1 MiB writes, waiting on flow control, until done or the stream ends. */
async function sendBody(stream: http2.ClientHttp2Stream, bytes: number): Promise<number> {
  const block = new Uint8Array(MIB);
  let sent = 0;
  while (sent < bytes && !stream.destroyed && stream.rstCode === undefined) {
    const ok = await new Promise<boolean>((resolve) =>
      stream.write(block, (error) => resolve(error == null))
    );
    if (!ok) break;
    sent += block.length;
  }
  return sent;
}

Deno.test({
  name: "server refuses 16 concurrent unauthenticated 60 MiB uploads without buffering them",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using child = await startServerChild(MAIN, {
      env: { SALES_API_TOKEN: "memory-test-token" },
      storagePrefix: "call_guard_memory_",
    });
    const session: { current?: http2.ClientHttp2Session } = {};
    try {
      session.current = http2.connect(`http://127.0.0.1:${child.grpcPort}`);
      session.current.on("error", () => {});
      // Warm up the connection and the handler code, so the baseline includes them.
      const warm = rawCall(session.current, "/sales.v1.SalesService/UploadCSV");
      warm.stream.end(lengthPrefix(0));
      assert.equal((await warm.reply).grpcStatus, Status.UNAUTHENTICATED);
      const before = await procStatusBytes(child.pid, "VmHWM");

      let timer: ReturnType<typeof setTimeout> | undefined;
      const results = await Promise.race([
        Promise.all(
          Array.from({ length: CALLS }, async () => {
            const call = rawCall(session.current!, "/sales.v1.SalesService/UploadCSV");
            call.stream.write(lengthPrefix(MESSAGE_BYTES));
            const [reply, sent] = await Promise.all([
              call.reply,
              sendBody(call.stream, MESSAGE_BYTES),
            ]);
            return { reply, sent };
          }),
        ),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`the ${CALLS} calls did not end within 20 s`)),
            20_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      const grown = (await procStatusBytes(child.pid, "VmHWM")) - before;

      for (const { reply, sent } of results) {
        assert.equal(reply.grpcStatus, Status.UNAUTHENTICATED);
        assert.ok(reply.elapsedMs < 1000, `refused after ${reply.elapsedMs} ms`);
        // The stream reset stops the client long before the whole message is out.
        assert.ok(sent < MESSAGE_BYTES / 2, `the client sent ${sent} bytes`);
      }
      assert.ok(grown < 30 * MIB, `peak RSS grew by ${(grown / MIB).toFixed(1)} MiB`);
    } finally {
      session.current?.destroy();
    }
  },
});
