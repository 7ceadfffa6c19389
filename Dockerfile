# The cpa worker (and CLI) image: Node 20 + the repository, run through tsx like `npx cpa`.
#   docker build -t cpa .            docker run --rm cpa --help
# docker-compose.yml runs it as the pipeline worker against Temporal, MinIO and Cassandra.
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production \
    NODE_NO_WARNINGS=1

# Dependencies first (cached layer). Runtime deps only: tsx runs the TypeScript, @temporalio/worker bundles the
# workflows at start-up, DuckDB and the Temporal core bridge ship prebuilt linux-x64/arm64 glibc binaries. npm ci runs
# the `prepare` build, which builds nothing without the dev dependencies (scripts/build.mjs).
COPY package.json package-lock.json ./
COPY scripts/build.mjs ./scripts/build.mjs
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY bin ./bin
COPY config ./config
COPY lake ./lake
COPY activities ./activities
COPY workflows ./workflows
COPY worker ./worker
COPY cli ./cli
COPY serving ./serving
COPY tsconfig.json ./

# DuckDB installs httpfs into ~/.duckdb on first S3 use (needs internet) and spills to /tmp.
USER node
ENTRYPOINT ["node", "bin/cpa.js"]
CMD ["worker"]
