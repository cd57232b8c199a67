/** The bar at the top of every page: the name, linking to the upload page. */
export default function SiteHeader() {
  return (
    <header class="site-header">
      <div class="page header-row">
        <a class="brand" href="/">
          <svg class="brand-mark" viewBox="0 0 24 24" aria-hidden="true">
            <rect x="3" y="12" width="4" height="9" rx="1" />
            <rect x="10" y="7" width="4" height="14" rx="1" />
            <rect x="17" y="3" width="4" height="18" rx="1" />
          </svg>
          Sales Aggregator
        </a>
      </div>
    </header>
  );
}
