import assert from "node:assert/strict";
import { renderToString } from "preact-render-to-string";
import TokenPrompt from "./TokenPrompt.tsx";

const noop = () => {};

Deno.test("TokenPrompt labels its field and ties the help text to it", () => {
  const html = renderToString(<TokenPrompt rejected={false} onSubmit={noop} onCancel={noop} />);
  assert.match(html, /<form [^>]*aria-labelledby="token-heading"/);
  assert.match(html, /<h3 id="token-heading">This server requires an access token<\/h3>/);
  assert.match(html, /<label for="access-token">Access token<\/label>/);
  const field = html.match(/<input [^>]*id="access-token"[^>]*>/)?.[0] ?? "";
  assert.match(field, /type="password"/);
  assert.match(field, /aria-describedby="token-help"/);
  assert.doesNotMatch(field, /aria-invalid/);
  assert.match(html, /<p id="token-help">[^<]*kept in this browser\s+tab only/);
  assert.doesNotMatch(html, /role="alert"/);
  assert.match(html, /<button type="submit" class="button primary">Continue upload<\/button>/);
  assert.match(html, /<button type="button" class="button">Cancel<\/button>/);
});

Deno.test("TokenPrompt shows a refused token as an error the field points to", () => {
  const html = renderToString(<TokenPrompt rejected onSubmit={noop} onCancel={noop} />);
  const field = html.match(/<input [^>]*id="access-token"[^>]*>/)?.[0] ?? "";
  assert.match(field, /aria-invalid="true"/);
  assert.match(field, /aria-describedby="token-error token-help"/);
  assert.match(
    html,
    /<p id="token-error" class="alert token-error" role="alert"[^>]*>The server did not accept this access token/,
  );
});
