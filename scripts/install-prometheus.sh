#!/usr/bin/env bash
# Installs Prometheus from Debian's package (used by the metric-provider tests and `sluice demo`)
# without starting a system Prometheus: tests and the demo start their own on loopback.
# Does nothing when `prometheus` is already installed.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "need root (or sudo) to install Debian's prometheus package" >&2
        exit 1
    fi
    SUDO=(sudo)
fi
# policy-rc.d keeps the package from starting a system Prometheus; a pre-existing one is restored.
policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "${policy}" ]; then
    backup="$(mktemp)"
    "${SUDO[@]}" cp -p "${policy}" "${backup}"
fi
printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "${policy}" >/dev/null
"${SUDO[@]}" chmod 0755 "${policy}"
rc=0
"${SUDO[@]}" apt-get update && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends prometheus || rc=$?
if [ -n "${backup}" ]; then
    "${SUDO[@]}" cp -p "${backup}" "${policy}"
    rm -f "${backup}"
else
    "${SUDO[@]}" rm -f "${policy}"
fi
exit "${rc}"
