/** The page for any URL that is not a page, asset or RPC (Fresh's `routes/_404.tsx`). */
export default function NotFoundPage({ path }: { path: string }) {
  return (
    <main id="main" class="page narrow">
      <h1>Page not found</h1>
      <p>
        There is nothing at <code>{path}</code>. <a href="/">Go to the upload page</a>.
      </p>
    </main>
  );
}
