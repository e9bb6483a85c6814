#!/usr/bin/env bash
# Builds (once) and caches the local Kubernetes control plane used by Sluice's integration tests,
# end-to-end tests and demo: kube-apiserver and kube-controller-manager 1.20.2, compiled offline
# from Debian bookworm's `kubernetes` source package with Debian's Go 1.19, plus etcd and openssl
# from Debian.
#
# Idempotent: when the cached binaries exist and etcd/openssl are installed it exits in seconds.
#
# Environment:
#   SLUICE_K8S_CACHE_DIR   cache root (default: ~/.cache/sluice/k8s-1.20.2); binaries go to $SLUICE_K8S_CACHE_DIR/bin
#   SLUICE_K8S_KEEP_BUILD  1 to keep the extracted source tree and Go build cache after a successful build
#   SLUICE_K8S_REBUILD     1 to rebuild even if the binaries are cached
set -euo pipefail

K8S_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
K8S_SRC_DIR_NAME="kubernetes-1.20.5+really1.20.2"
CACHE="${SLUICE_K8S_CACHE_DIR:-${HOME}/.cache/sluice/k8s-1.20.2}"
BIN="${CACHE}/bin"
BINARIES=(kube-apiserver kube-controller-manager)

CURRENT_STEP="start"
step() {
    CURRENT_STEP="$*"
    printf '==> [k8s-1.20.2] %s\n' "$*"
}
on_error() {
    local rc=$?
    printf '\nERROR: tests/cluster/build.sh failed at step "%s" (exit code %s).\n' "${CURRENT_STEP}" "${rc}" >&2
    printf 'Fix the cause above and re-run: bash tests/cluster/build.sh\n' >&2
    exit "${rc}"
}
trap on_error ERR

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi
as_root() {
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
    "${SUDO[@]}" "$@"
}

binaries_cached() {
    local b
    for b in "${BINARIES[@]}"; do
        [ -x "${BIN}/${b}" ] || return 1
    done
    [ -f "${BIN}/.complete" ] || return 1
}

runtime_tools_present() {
    command -v openssl >/dev/null 2>&1 && [ -x /usr/bin/etcd ]
}

if [ "${SLUICE_K8S_REBUILD:-0}" != "1" ] && binaries_cached && runtime_tools_present; then
    step "cached: ${BIN} ($(cat "${BIN}/.complete")); etcd and openssl installed; nothing to do"
    exit 0
fi

APT_UPDATED=0
apt_update_once() {
    if [ "${APT_UPDATED}" = 0 ]; then
        as_root apt-get update
        APT_UPDATED=1
    fi
}

# Install packages without letting their maintainer scripts start system services (etcd-server
# would otherwise start a system etcd on the default ports). A pre-existing policy-rc.d is restored.
apt_install_no_services() {
    local policy=/usr/sbin/policy-rc.d backup=""
    if [ -e "${policy}" ]; then
        backup="$(mktemp)"
        as_root cp -p "${policy}" "${backup}"
    fi
    printf '#!/bin/sh\nexit 101\n' | as_root tee "${policy}" >/dev/null
    as_root chmod 0755 "${policy}"
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" || rc=$?
    if [ -n "${backup}" ]; then
        as_root cp -p "${backup}" "${policy}"
        rm -f "${backup}"
    else
        as_root rm -f "${policy}"
    fi
    return "${rc}"
}

if ! runtime_tools_present; then
    step "install etcd-server and openssl from Debian (no system service is started)"
    apt_update_once
    apt_install_no_services etcd-server openssl
    # Belt and braces: if an init system started etcd anyway, stop it; tests run their own etcd.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
        as_root systemctl disable --now etcd || true
    fi
fi

if [ "${SLUICE_K8S_REBUILD:-0}" = "1" ] || ! binaries_cached; then
    step "configure a deb-src source for bookworm main"
    SRC_LIST=/etc/apt/sources.list.d/sluice-bookworm-src.sources
    if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src .* bookworm main' /etc/apt/sources.list; then
        as_root tee "${SRC_LIST}" >/dev/null <<'X'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
X
        APT_UPDATED=0
    fi

    step "install build dependencies (dpkg-dev golang-1.19-go make rsync golang-github-modern-go-reflect2-dev)"
    apt_update_once
    apt_install_no_services dpkg-dev golang-1.19-go make rsync golang-github-modern-go-reflect2-dev

    WORK="${CACHE}/build"
    SRC="${WORK}/kubernetes"
    mkdir -p "${WORK}"
    if [ ! -f "${SRC}/.sluice-patched" ]; then
        step "download and unpack Debian source kubernetes=${K8S_DEB_VERSION} into ${WORK}"
        rm -rf "${SRC}" "${WORK:?}/${K8S_SRC_DIR_NAME}"
        (cd "${WORK}" && apt-get source --only-source "kubernetes=${K8S_DEB_VERSION}")
        mv "${WORK}/${K8S_SRC_DIR_NAME}" "${SRC}"

        step "patch vendor/: replace reflect2 v1.0.1 (segfaults under Go >= 1.18) with Debian's reflect2"
        rm -rf "${SRC}/vendor/github.com/modern-go/reflect2"
        cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "${SRC}/vendor/github.com/modern-go/reflect2"
        rm -f "${SRC}/vendor/github.com/modern-go/reflect2/go.mod"

        step "patch vendor/: accept empty strings in typed custom-resource fields (upstream 1.21 behaviour)"
        for f in vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go vendor/github.com/go-openapi/validate/type.go; do
            [ -f "${SRC}/${f}" ] || continue
            sed -i 's/^\tif data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {$/\tif data == nil {/' "${SRC}/${f}"
            if grep -q 'reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))' "${SRC}/${f}"; then
                echo "patch did not apply to ${f}" >&2
                false
            fi
        done
        touch "${SRC}/.sluice-patched"
    fi

    step "compile ${BINARIES[*]} with Go 1.19 (CGO disabled; several minutes on 2 cores)"
    started=$(date +%s)
    (
        cd "${SRC}"
        export GOROOT=/usr/lib/go-1.19 PATH=/usr/lib/go-1.19/bin:${PATH} CGO_ENABLED=0
        export GOCACHE="${WORK}/go-build" GOFLAGS=-mod=vendor GOPROXY=off
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
    )
    elapsed=$(( $(date +%s) - started ))

    step "install binaries into ${BIN}"
    mkdir -p "${BIN}"
    rm -f "${BIN}/.complete"
    for b in "${BINARIES[@]}"; do
        install -m 0755 "${SRC}/_output/local/bin/linux/amd64/${b}" "${BIN}/${b}"
    done
    "${BIN}/kube-apiserver" --version
    echo "kubernetes ${K8S_DEB_VERSION} (debian source, patched), built $(date -u +%Y-%m-%dT%H:%M:%SZ) in ${elapsed}s" > "${BIN}/.complete"

    if [ "${SLUICE_K8S_KEEP_BUILD:-0}" != "1" ]; then
        step "remove the build tree (set SLUICE_K8S_KEEP_BUILD=1 to keep it)"
        chmod -R u+w "${WORK}" 2>/dev/null || true
        rm -rf "${WORK}"
    fi
fi

step "ready: $(cat "${BIN}/.complete")"
step "binaries: ${BIN}; etcd: $(/usr/bin/etcd --version 2>/dev/null | head -n1)"
