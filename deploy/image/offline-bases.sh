#!/bin/sh
#! offline-bases.sh: make the Dockerfile's two base images locally, from Debian packages and
#! this machine's Rust toolchain, for a builder that cannot pull from Docker Hub.
#!
#! The Dockerfile builds FROM `rust:1.95-bookworm` and `debian:bookworm-slim`. Where no image
#! registry is reachable but a Debian mirror is (apt works), this script makes both with
#! debootstrap and podman, under the names the Dockerfile uses, so the Dockerfile builds
#! unchanged with `--pull=never`:
#!
#!   debian:bookworm-slim  debootstrap --variant=minbase bookworm, with the official slim image's
#!                         dpkg path excludes (no docs, man pages or locales) and no apt lists.
#!   rust:1.95-bookworm    the same rootfs plus gcc, libc6-dev, pkg-config, ca-certificates and
#!                         the host's locally added CAs (/usr/local/share/ca-certificates),
#!                         the local Rust 1.95 toolchain (from rustup, without its docs) as
#!                         /usr/local/rustup/toolchains/<name>, with /usr/local/cargo/bin holding
#!                         links to cargo, rustc etc. ENV as the official image (RUSTUP_HOME,
#!                         CARGO_HOME, PATH, RUST_VERSION); there is no rustup in it.
#!
#! They are stand-ins, not the Docker Official Images: same Debian release, so the runtime's
#! glibc matches the builder's, which is what the Dockerfile relies on.
#!
#! Usage (as root; needs debootstrap, podman, rustup's toolchain and a Debian mirror):
#!   deploy/image/offline-bases.sh [WORKDIR]        # WORKDIR default /var/tmp/ringcache-bases
#! Environment: MIRROR (default: the first `URIs:`/`deb` line of apt's sources naming
#! .../debian), TOOLCHAIN (default ${RUSTUP_HOME:-$HOME/.rustup}/toolchains/
#! 1.95.0-x86_64-unknown-linux-gnu), PODMAN_RUN_FLAGS (extra `podman run` flags for the final
#! check, e.g. `--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096` where crun
#! or the default ulimits are refused, as on the machine docs/operations.md describes).
set -eu

WORK=${1:-/var/tmp/ringcache-bases}
RUST_VERSION=1.95.0
TOOLCHAIN=${TOOLCHAIN:-${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu}
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | sed -n -e 's|^URIs:[[:space:]]*\([^[:space:]]*/debian\)/*$|\1|p' \
                 -e 's|^deb[[:space:]]\{1,\}\([^[:space:]]*/debian\)/*[[:space:]].*|\1|p' | head -n 1)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

"$TOOLCHAIN/bin/rustc" -V | grep -q "^rustc $RUST_VERSION " \
    || { echo "no Rust $RUST_VERSION toolchain at $TOOLCHAIN" >&2; exit 1; }

SLIM=$WORK/slim
RUST=$WORK/rust
rm -rf "$SLIM" "$RUST"
mkdir -p "$WORK"

echo "== debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase bookworm "$SLIM" "$MIRROR"

# The official slim image's dpkg excludes: later installs leave these out too.
cat > "$SLIM/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$SLIM/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$SLIM/usr/share/doc" -mindepth 1 -type d -empty -delete
for d in man groff info lintian linda; do rm -rf "${SLIM:?}/usr/share/$d"/*; done
find "$SLIM/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
: > "$SLIM/etc/resolv.conf"

# The builder: a copy (apt lists still present), plus the C toolchain for cc-built crates
# (ring, mimalloc) and CA certificates for crates.io. CAs this machine added locally (a
# TLS-intercepting egress proxy's, say) go in too, so `cargo build` in the builder reaches
# crates.io wherever the host's cargo does; they are not in the runtime image.
cp -a "$SLIM" "$RUST"
cp /etc/resolv.conf "$RUST/etc/resolv.conf"
mkdir -p "$RUST/usr/local/share/ca-certificates"
if [ -d /usr/local/share/ca-certificates ]; then
    cp -R /usr/local/share/ca-certificates/. "$RUST/usr/local/share/ca-certificates/"
fi
mount -t proc proc "$RUST/proc"
trap 'umount "$RUST/proc" 2>/dev/null || true' EXIT
echo "== apt-get install the build essentials in the builder rootfs"
chroot "$RUST" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    gcc libc6-dev pkg-config ca-certificates
chroot "$RUST" apt-get clean
umount "$RUST/proc"
trap - EXIT
: > "$RUST/etc/resolv.conf"

for root in "$SLIM" "$RUST"; do
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log "$root"/var/log/apt/*
done

echo "== copy the Rust $RUST_VERSION toolchain from $TOOLCHAIN"
TC=$RUST/usr/local/rustup/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu
mkdir -p "$TC" "$RUST/usr/local/cargo/bin"
tar -C "$TOOLCHAIN" --exclude=./share/doc -c . | tar -C "$TC" -x
for t in "$TC"/bin/*; do
    ln -s "../../rustup/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu/bin/${t##*/}" \
        "$RUST/usr/local/cargo/bin/${t##*/}"
done

echo "== import"
# Tagged under both the short name and docker.io/library/..., the name `FROM` resolves to.
tar --numeric-owner -C "$SLIM" -c . \
    | podman import --change 'CMD ["bash"]' - debian:bookworm-slim
podman tag localhost/debian:bookworm-slim docker.io/library/debian:bookworm-slim
tar --numeric-owner -C "$RUST" -c . \
    | podman import \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "ENV RUST_VERSION=$RUST_VERSION" \
        --change 'CMD ["bash"]' - rust:1.95-bookworm
podman tag localhost/rust:1.95-bookworm docker.io/library/rust:1.95-bookworm

echo "== check"
# shellcheck disable=SC2086 # PODMAN_RUN_FLAGS is a list of flags
podman run --rm ${PODMAN_RUN_FLAGS:-} rust:1.95-bookworm sh -c 'cargo --version && rustc --version && cc --version | head -n 1'
# shellcheck disable=SC2086
podman run --rm ${PODMAN_RUN_FLAGS:-} debian:bookworm-slim cat /etc/debian_version
podman images --filter reference=debian:bookworm-slim --filter reference=rust:1.95-bookworm
