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
bash scripts/install-prometheus.sh
prometheus --version 2>&1 | head -n 1

echo "==> componentize-py (builds the Python example plugin), cached under ~/.cache/sluice"
bash scripts/install-componentize-py.sh

echo "==> Helm (for the chart tests), cached under ~/.cache/sluice"
bash scripts/install-helm.sh
