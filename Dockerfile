# pgcluster-operator image: `docker build -t <registry>/pgcluster-operator:0.2.0 .`
#
# Two stages: the build stage compiles TypeScript (dev dependencies), the runtime stage holds only the compiled
# JavaScript and the production dependencies, and runs as an unprivileged user.

# ---- build: npm ci with dev dependencies, tsc -> dist/ ----
FROM node:24-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts stay off: no dependency needs one to build (the `node` dev dependency, Node 24 for
# machines whose system Node is older, is redundant in this image).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and dist/ only ----
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The system CA store, for sslrootcert=system in a Postgres URL (README, "TLS"): the slim base has none, so the
# build stage's (Debian's ca-certificates) is copied in, and SSL_CERT_FILE says where it is (Node's
# tls.getCACertificates('system') reads it there; the chart's extraEnv and extraVolumes can replace it).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# 65532: the conventional "nonroot" uid/gid; the Helm chart's securityContext runs as the same user and
# mounts the root filesystem read-only (nothing here needs to write).
USER 65532:65532
EXPOSE 8080
# Exec form: node is PID 1 and receives SIGTERM itself, stops the heartbeats, releases its Lease and exits 0.
# The V8 flags of src/nodeFlags.ts (a unit test keeps them in step).
ENTRYPOINT ["node", "--max-semi-space-size=8", "dist/src/main.js"]
