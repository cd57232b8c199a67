import assert from "node:assert/strict";
import { HttpError, loadFsRoutes, type RenderedPage, routePattern } from "./fs_routes.ts";

/** Writes `files` (path → source) into a temp routes folder. */
async function routesFolder(files: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix: "fs_routes_test_" });
  for (const [path, source] of Object.entries(files)) {
    const file = `${dir}/${path}`;
    await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(file, source);
  }
  return {
    url: new URL(`file://${dir}/`),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

const APP = `export default function App({ Component, state }) {
  return <html><head><title>{state.title ?? "untitled"}</title></head><body><Component /></body></html>;
}
`;
const ERROR = `import { HttpError } from ${
  JSON.stringify(new URL("./fs_routes.ts", import.meta.url).href)
};
export function handler(ctx) {
  ctx.state.title = "error";
  return { data: undefined };
}
export default function ErrorPage({ error, url }) {
  const status = error instanceof HttpError ? error.status : 500;
  return <h1>Error {status} at {url.pathname}: {status === 500 ? "generic" : error.message}</h1>;
}
`;

function page(answer: Response | RenderedPage): RenderedPage {
  assert.ok(!(answer instanceof Response), "a Response where a page was expected");
  return answer;
}

Deno.test("routePattern names routes from their files as Fresh does", async (t) => {
  const cases = [
    ["index.tsx", "/"],
    ["about.tsx", "/about"],
    ["r/[id].tsx", "/r/:id"],
    ["r/index.tsx", "/r"],
    ["(marketing)/pricing.tsx", "/pricing"],
    ["blog/[...rest].tsx", "/blog/:rest*"],
    ["[...rest].tsx", "/:rest(.*)"],
    ["shop/[shop]/[item].tsx", "/shop/:shop/:item"],
  ];
  for (const [file, pattern] of cases) {
    await t.step(file, () => assert.equal(routePattern(file), pattern));
  }
});

Deno.test("loadFsRoutes serves each file at its path, wrapped in _app, and skips special files", async () => {
  await using dir = await routesFolder({
    "_app.tsx": APP,
    "_error.tsx": ERROR,
    "index.tsx": "export default () => <p>home</p>;\n",
    "about.tsx": "export default ({ url }) => <p>about {url.pathname}</p>;\n",
    "(group)/pricing.tsx": "export default () => <p>pricing</p>;\n",
    "about_test.tsx": "throw new Error('a test file is never imported');\n",
    "r/_helper.ts": "export const x = 1;\n",
  });
  const routes = await loadFsRoutes(dir.url);
  assert.deepEqual(routes.routes.map((route) => route.pattern).sort(), ["/", "/about", "/pricing"]);
  const render = async (path: string) =>
    page(await routes.render(new Request(`http://localhost${path}`), path, {}));
  const home = await render("/");
  assert.equal(home.status, 200);
  assert.equal(
    home.html,
    "<!DOCTYPE html><html><head><title>untitled</title></head><body><p>home</p></body></html>",
  );
  assert.match((await render("/about")).html, /<p>about \/about<\/p>/);
  assert.match((await render("/pricing")).html, /<p>pricing<\/p>/);
  for (const path of ["/nope", "/about/", "/group/pricing", "/_app", "/_error", "/about_test"]) {
    const missing = await render(path);
    assert.equal(missing.status, 404, path);
    assert.match(missing.html, /<title>error<\/title>.*<h1>Error 404 at /s, path);
  }
});

Deno.test("loadFsRoutes passes dynamic segments as params and handler data as props", async () => {
  const fsRoutes = JSON.stringify(new URL("./fs_routes.ts", import.meta.url).href);
  await using dir = await routesFolder({
    "_app.tsx": APP,
    "_error.tsx": ERROR,
    "r/[id].tsx": `import { HttpError, page } from ${fsRoutes};
export const handler = {
  GET(ctx) {
    if (ctx.params.id === "missing") throw new HttpError(404, "No result " + ctx.params.id);
    if (ctx.params.id === "old") return Response.redirect(new URL("/r/new", ctx.url), 308);
    if (ctx.params.id === "gone") return page({ id: "gone" }, { status: 410, headers: { "x-why": "deleted" } });
    ctx.state.title = "result " + ctx.params.id;
    return page({ id: ctx.params.id, seen: ctx.state.seen, method: ctx.req.method });
  },
};
export default ({ data, params }) => <p>{data.id} {params.id} {data.seen} {data.method}</p>;
`,
    "r/latest.tsx": "export default () => <p>latest</p>;\n",
    "blog/[...rest].tsx": "export default ({ params }) => <p>rest [{params.rest}]</p>;\n",
    "throws.tsx": "export const handler = () => { throw new Error('secret cause'); };\n",
  });
  const routes = await loadFsRoutes(dir.url);
  const render = (path: string, method = "GET") =>
    routes.render(new Request(`http://localhost${path}`, { method }), path, { seen: "state" });

  const result = page(await render("/r/3f2a%20b"));
  assert.equal(result.status, 200);
  assert.match(result.html, /<title>result 3f2a b<\/title>/);
  assert.match(result.html, /<p>3f2a b 3f2a b state GET<\/p>/);
  assert.match(page(await render("/r/x", "HEAD")).html, /<p>x x state HEAD<\/p>/);
  // A static segment wins over a dynamic one.
  assert.match(page(await render("/r/latest")).html, /<p>latest<\/p>/);
  assert.match(page(await render("/blog")).html, /<p>rest \[\]<\/p>/);
  assert.match(page(await render("/blog/2024/01")).html, /<p>rest \[2024\/01\]<\/p>/);

  const missing = page(await render("/r/missing"));
  assert.equal(missing.status, 404);
  assert.match(missing.html, /<h1>Error 404 at \/r\/missing: No result missing<\/h1>/);
  const redirect = await render("/r/old");
  assert.ok(redirect instanceof Response);
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get("location"), "http://localhost/r/new");
  const gone = page(await render("/r/gone"));
  assert.equal(gone.status, 410);
  assert.equal(gone.headers.get("x-why"), "deleted");

  await assert.rejects(render("/throws"), /secret cause/);
  const error = await routes.renderError(
    new Request("http://localhost/throws"),
    "/throws",
    {},
    new Error("secret cause"),
  );
  assert.equal(error.status, 500);
  assert.match(error.html, /<h1>Error 500 at \/throws: generic<\/h1>/);
  assert.doesNotMatch(error.html, /secret/);
  assert.equal(
    (await routes.renderError(new Request("http://localhost/x"), "/x", {}, new HttpError(403)))
      .status,
    403,
  );
});

Deno.test("loadFsRoutes refuses two files that serve the same path", async () => {
  await using dir = await routesFolder({
    "about.tsx": "export default () => <p>a</p>;\n",
    "(group)/about.tsx": "export default () => <p>b</p>;\n",
  });
  await assert.rejects(
    loadFsRoutes(dir.url),
    /Routes .*about\.tsx and .*about\.tsx .* both serve \/about/,
  );
});
