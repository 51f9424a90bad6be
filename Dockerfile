# syntax=docker/dockerfile:1
# The ringcache image: the `ringcache` binary alone on a slim Debian, run as a non-root user.
# One image serves every role (`node`, `proxy`, `local`, `ring`); the default command runs a
# node listening on every interface. docs/operations.md says how to build and run it.
#
#   docker build -t ringcache .
#   docker run --rm -p 11211:11211 -p 9150:9150 ringcache
#   docker run --rm ringcache proxy --config /etc/ringcache/proxy.toml   # with a mounted config

# --- build: the workspace's pinned toolchain floor (rust-version = 1.85) is met by this image ---
FROM rust:1.95-bookworm AS build
# The commit for `ringcache_build_info{commit}` (the context has no .git, so build.rs cannot
# ask git): docker build --build-arg RINGCACHE_COMMIT=$(git rev-parse --short=12 HEAD) .
# Left unset, the metric says "unknown".
ARG RINGCACHE_COMMIT
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions in Cargo.lock. The cache mounts keep the
# registry and target/ between builds on the same builder; the binary is copied out of them,
# stripped (`install -s`): the release profile keeps line tables for profiling, 54 of its 64 MB.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ringcache \
    && install -D -s -m 0755 target/release/ringcache /out/ringcache

# --- runtime: glibc and libgcc_s (the binary's only shared libraries) and a shell for `sleep`
# in Kubernetes preStop hooks; nothing else. Same Debian release as the builder, so the glibc
# the binary was linked against is present. ---
FROM debian:bookworm-slim
COPY --from=build /out/ringcache /usr/local/bin/ringcache
# A numeric, unprivileged user: Kubernetes' runAsNonRoot can only verify a numeric USER.
USER 10001:10001
# 11211: memcached protocol (node and proxy). 9150: node /metrics. 9151: proxy /metrics.
EXPOSE 11211 9150 9151
# ringcache handles SIGTERM itself (a node given --drain-timeout first drains while the proxies
# move its keys; then it stops accepting, finishes in-flight requests, exits), so it runs as
# PID 1 without an init; it starts no child processes that would need reaping. With a drain,
# give `docker stop` room for it (-t drain + 10).
ENTRYPOINT ["/usr/local/bin/ringcache"]
CMD ["node", "--listen", "0.0.0.0:11211", "--metrics-listen", "0.0.0.0:9150"]
