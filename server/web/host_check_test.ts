import assert from "node:assert/strict";
import http2 from "node:http2";
import { ResultStore } from "../storage/result_store.ts";
import { createHostCheck, parseHostAuthority, parseTarget } from "./host_check.ts";
import { createResultsHandler } from "./results_handler.ts";
import { createWebHandler } from "./web_app.ts";
import { createFakeSalesService } from "./_test_fake_sales_service.ts";
import { rawRequest } from "./_test_raw_http.ts";

const CSV = "Department Name,Total Number of Sales\nToys,7\n";

Deno.test("parseHostAuthority accepts host names and IP literals with a port, nothing else", async (t) => {
  const valid: [string, string][] = [
    ["localhost", "localhost"],
    ["LOCALHOST:3000", "localhost"],
    ["sales.example.com", "sales.example.com"],
    ["sales.example.com.", "sales.example.com."],
    ["127.0.0.1:8080", "127.0.0.1"],
    ["[::1]", "[::1]"],
    ["[::1]:3000", "[::1]"],
    ["[2001:DB8::1]:443", "[2001:db8::1]"],
    ["my_host-1:65535", "my_host-1"],
  ];
  for (const [authority, host] of valid) {
    await t.step(`valid: ${authority}`, () => assert.equal(parseHostAuthority(authority), host));
  }
  const invalid = [
    "",
    "a b",
    "[::1",
    "::1",
    "[::1]x",
    "[::1]:",
    "[localhost]",
    "[v1.fe]",
    "[fe80::1%25eth0]",
    "h/results/0123456789abcdef0123456789abcdef.csv?e=1#",
    "h?x",
    "h#x",
    "user@h",
    "h:",
    "h:65536",
    "h:80:80",
    "h:-1",
    ".h",
    "h..example",
    "h%2f",
    "h\\x",
    "h\tx",
  ];
  for (const authority of invalid) {
    await t.step(`invalid: ${JSON.stringify(authority)}`, () => {
      assert.equal(parseHostAuthority(authority), undefined);
    });
  }
});

Deno.test("parseTarget reads the path of the target alone, even when it looks like an authority", () => {
  assert.equal(parseTarget("//evil.example/results/x.csv").path, "//evil.example/results/x.csv");
  assert.equal(parseTarget("/static/../results/x.csv?a=1&b").path, "/results/x.csv");
  assert.equal(parseTarget("/a?e=1&sig=2").searchParams.get("sig"), "2");
  assert.equal(parseTarget("*").path, "*");
});

Deno.test("createHostCheck refuses hosts outside allowedHosts with 421 and lets listed ones through", async () => {
  const check = createHostCheck({ allowedHosts: ["sales.example", "[::1]", "127.0.0.1"] });
  for (const url of ["http://sales.example/", "http://SALES.example:3000/x", "http://[::1]:8/"]) {
    const target = check(new Request(url));
    assert.ok(!(target instanceof Response), url);
  }
  const refused = check(new Request("http://rebind.example:3000/"));
  assert.ok(refused instanceof Response);
  assert.equal(refused.status, 421);
  assert.equal(refused.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.match(await refused.text(), /rebind\.example.*ALLOWED_HOSTS/);
  // A Host header is checked too, even when the URL (built in-process) is fine.
  const spoofed = check(new Request("http://sales.example/", { headers: { host: "a b" } }));
  assert.ok(spoofed instanceof Response);
  assert.equal(spoofed.status, 400);
  await spoofed.body?.cancel();
});

/** Both HTTP ports on real sockets, as main.ts serves them, with one result stored. */
async function startPorts(allowedHosts: string[] = []) {
  const dir = await Deno.makeTempDir({ prefix: "host_check_test_" });
  const store = await ResultStore.open(dir);
  const resultId = await store.save(CSV);
  const errors: unknown[] = [];
  const onError = (error: unknown) => {
    errors.push(error);
    return new Response("Internal server error\n", { status: 500 });
  };
  const listen = { hostname: "127.0.0.1", port: 0, onListen: () => {}, onError };
  const results = Deno.serve(
    listen,
    createResultsHandler({ store, allowedHosts, logError: (_, error) => errors.push(error) }),
  );
  const web = Deno.serve(
    listen,
    createWebHandler({
      service: createFakeSalesService().service,
      config: {
        grpcWebUrl: "",
        corsOrigins: [],
        maxMessageBytes: 1 << 20,
        maxUploadBytes: undefined,
        allowedHosts,
      },
    }),
  );
  return {
    resultId,
    errors,
    results: results.addr.port,
    web: web.addr.port,
    async [Symbol.asyncDispose]() {
      await Promise.all([results.shutdown(), web.shutdown()]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("createResultsHandler and createWebHandler answer malformed or missing Host with 400 over a socket", async (t) => {
  await using ports = await startPorts();
  const resultPath = `/results/${ports.resultId}.csv`;
  const originalError = console.error;
  const logged: unknown[] = [];
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    for (
      const [name, port, path] of [["result port", ports.results, resultPath], [
        "web port",
        ports.web,
        "/static/styles.css",
      ]] as const
    ) {
      const cases: [string, string][] = [
        ["Host with a path", `GET /anything HTTP/1.1\r\nHost: h${resultPath}?x=1#`],
        ["Host with a space", `GET ${path} HTTP/1.1\r\nHost: a b`],
        ["unclosed IPv6 literal", `GET ${path} HTTP/1.1\r\nHost: [::1`],
        ["user info", `GET ${path} HTTP/1.1\r\nHost: user@127.0.0.1`],
        ["empty Host", `GET ${path} HTTP/1.1\r\nHost: `],
        ["no Host", `GET ${path} HTTP/1.1`],
        ["absolute target with a bad authority", `GET http://u@h${path} HTTP/1.1\r\nHost: h`],
      ];
      for (const [label, head] of cases) {
        await t.step(`${name}: ${label}`, async () => {
          const response = await rawRequest(port, head);
          assert.equal(response.status, 400);
          assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
          const text = new TextDecoder().decode(response.body);
          assert.match(text, /Host|authority/);
          assert.doesNotMatch(text, /Toys|at |Error/);
        });
      }
      await t.step(`${name}: a valid Host is served`, async () => {
        const response = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}`);
        assert.equal(response.status, 200);
      });
    }
    await t.step("the path comes from the target, not from Host", async () => {
      const response = await rawRequest(
        ports.results,
        `GET /results/ HTTP/1.1\r\nHost: localhost:${ports.results}`,
      );
      assert.equal(response.status, 404);
    });
  } finally {
    console.error = originalError;
  }
  assert.deepEqual(logged, [], "nothing is logged for a bad Host");
  assert.deepEqual(ports.errors, []);
});

Deno.test("createResultsHandler and createWebHandler answer hosts outside ALLOWED_HOSTS with 421 over a socket", async (t) => {
  await using ports = await startPorts(["sales.example", "127.0.0.1"]);
  for (
    const [name, port, path] of [
      ["result port", ports.results, `/results/${ports.resultId}.csv`],
      ["web port", ports.web, "/static/styles.css"],
    ] as const
  ) {
    await t.step(name, async () => {
      const refused = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: rebind.example`);
      assert.equal(refused.status, 421);
      assert.match(new TextDecoder().decode(refused.body), /Misdirected request/);
      for (const host of ["sales.example", "SALES.EXAMPLE:80", `127.0.0.1:${port}`]) {
        const served = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: ${host}`);
        assert.equal(served.status, 200, host);
      }
    });
  }
  assert.deepEqual(ports.errors, []);
});

/** One HTTP/2 (prior knowledge) request; resolves with the status and body text. */
async function h2Get(
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise((resolve, reject) => {
      session.once("error", reject);
      const stream = session.request({ ":method": "GET", ...headers });
      let status = 0;
      let body = "";
      stream.setEncoding("utf8");
      stream.on("response", (response) => status = Number(response[":status"]));
      stream.on("data", (chunk: string) => body += chunk);
      stream.on("end", () => resolve({ status, body }));
      stream.on("error", reject);
      stream.end();
    });
  } finally {
    session.close();
  }
}

Deno.test("createResultsHandler and createWebHandler judge HTTP/2 :authority like Host", async (t) => {
  await using ports = await startPorts(["127.0.0.1"]);
  for (
    const [name, port, path, expected] of [
      ["result port", ports.results, `/results/${ports.resultId}.csv`, CSV],
      ["web port", ports.web, "/favicon.svg", undefined],
    ] as const
  ) {
    await t.step(name, async () => {
      const served = await h2Get(port, { ":path": path, ":authority": `127.0.0.1:${port}` });
      assert.equal(served.status, 200);
      if (expected !== undefined) assert.equal(served.body, expected);
      const misdirected = await h2Get(port, { ":path": path, ":authority": "rebind.example" });
      assert.equal(misdirected.status, 421);
      const malformed = await h2Get(port, { ":path": path, ":authority": "u@127.0.0.1" });
      assert.equal(malformed.status, 400);
    });
  }
  assert.deepEqual(ports.errors, []);
});
