# fedgate: one image for every role (controller, gateway, CLI).
#   docker build -t fedgate:0.1.0 .
#   docker run --rm fedgate:0.1.0 --help

# Build: the full dev dependency set and the TypeScript compiler.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# Runtime: production dependencies and the compiled code, nothing else.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/src ./dist/src
# Writable places for CAs, state and tokens; named volumes mounted here inherit the ownership.
RUN mkdir -p /var/lib/fedgate/pki /var/lib/fedgate/state /var/lib/fedgate/tokens \
    && chown -R 1000:1000 /var/lib/fedgate
# uid 1000 is the image's "node" user; numeric so that runAsNonRoot can verify it.
USER 1000:1000
# controller: 15010 join (TLS), 15012 API (mTLS), 15014 admin HTTP
# gateway:    15443 inbound (mTLS HTTP/2), 15001 outbound (HTTP/1.1 + h2c), 15021 admin HTTP
EXPOSE 15010 15012 15014 15443 15001 15021
# SERVER_NODE_FLAGS of src/core/node-flags.ts: a larger young generation (less GC per request),
# no GC helper threads competing with the event loop for the pod's CPUs, and no pretenuring of
# per-request objects.
ENTRYPOINT ["node", "--max-semi-space-size=32", "--single-threaded-gc", "--no-allocation-site-pretenuring", "dist/src/bin/fedgate.js"]
CMD ["--help"]
