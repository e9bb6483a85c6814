#!/usr/bin/env bash
# Prepares a fresh machine to build and test Sluice: the Rust target for plugins and the cached
# local Kubernetes control plane the integration tests run against. Safe to re-run: cached
# steps take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> Rust toolchain and the wasm32-wasip2 target (pinned in rust-toolchain.toml)"
rustup show active-toolchain
rustup target add wasm32-wasip2

echo "==> local control plane (kube-apiserver, kube-controller-manager, etcd), cached under ~/.cache/sluice"
bash tests/cluster/build.sh

echo "==> Prometheus (Debian package) for the metric-provider tests"
if ! command -v prometheus >/dev/null 2>&1; then
    # policy-rc.d keeps the package from starting a system Prometheus; tests start their own.
    restore_policy=""
    if [ -e /usr/sbin/policy-rc.d ]; then
        restore_policy="$(mktemp)"
        cp /usr/sbin/policy-rc.d "$restore_policy"
    fi
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
    if [ -n "$restore_policy" ]; then
        mv "$restore_policy" /usr/sbin/policy-rc.d
    else
        rm -f /usr/sbin/policy-rc.d
    fi
fi
prometheus --version 2>&1 | head -n 1
