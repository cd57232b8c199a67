# The Sales Aggregator: gRPC on 50051, result files on 8080, web UI and gRPC-Web on 3000.
#
#   docker build -t sales-aggregator .
#   docker run --rm -p 50051:50051 -p 8080:8080 -p 3000:3000 -v sales-results:/data sales-aggregator
#
# compose.yaml runs it behind Envoy. deploy/compose_test.ts checks this file against compose.yaml.

# Pinned like the rest of the project (see DEVELOPERS.md): Deno 2.9.3, Debian variant.
FROM denoland/deno:2.9.3

# No network look-ups for new Deno versions; results go to the volume declared below. The service
# listens on loopback unless told otherwise; in a container the published ports and Envoy reach it
# from outside, so all three listen on every interface.
ENV DENO_NO_UPDATE_CHECK=1 \
    STORAGE_DIR=/data \
    GRPC_HOST=0.0.0.0 \
    HTTP_HOST=0.0.0.0 \
    WEB_HOST=0.0.0.0

WORKDIR /app

# The build runs as the image's non-root user, which owns the app folder until the end of the
# build and the results folder for good (a new named volume copies this ownership).
RUN mkdir -p /data && chown deno:deno /data /app
USER deno

# Dependencies first, from the manifest alone, so this layer is rebuilt only when deno.json or
# deno.lock change. (deno.lock* : the build also works before the lock file is committed.)
COPY --chown=deno:deno deno.json deno.lock* ./
RUN deno install

# Then the source: cache the server's whole module graph (anything deno.json did not list),
# including the pages and islands it imports by file name at start-up, and build the island
# bundle, so nothing is downloaded or built when the container starts.
COPY --chown=deno:deno . .
RUN deno cache server/main.ts $(find routes islands -name '*.tsx' ! -name '*_test.tsx') \
    && deno task build

# At run time the service may write its results and Deno's cache (/deno-dir), not its own code.
USER root
RUN chown -R root:root /app && chmod -R a+rX,go-w /app
USER deno

VOLUME ["/data"]
EXPOSE 50051 8080 3000

# The gRPC port accepts connections and the page renders (Envoy checks grpc.health.v1 itself).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["deno", "eval", "const c = await Deno.connect({ hostname: '127.0.0.1', port: Number(Deno.env.get('GRPC_PORT') || 50051) }); c.close(); const r = await fetch('http://127.0.0.1:' + (Deno.env.get('WEB_PORT') || 3000) + '/', { signal: AbortSignal.timeout(4000) }); await r.body?.cancel(); if (!r.ok) Deno.exit(1);"]

# What `deno task start` runs, without the build step (done above) and with writes limited to
# the results volume. --cached-only: a missing dependency fails at start instead of being
# fetched from inside the container.
CMD ["deno", "run", "--cached-only", "--v8-flags=--max-semi-space-size=1", "--allow-net", "--allow-read", "--allow-write=/data", "--allow-env", "--allow-sys", "server/main.ts"]
