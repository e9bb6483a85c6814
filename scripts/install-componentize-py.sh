#!/usr/bin/env bash
# Installs componentize-py (the Python → WebAssembly component toolchain, version pinned in
# plugins/examples/python-provider/requirements.txt) into its own virtualenv under
# ~/.cache/sluice and prints the path of the `componentize-py` binary. When the pinned version
# is already installed it only prints the path.
#
# Environment:
#   SLUICE_CACHE_DIR   cache root (default: ~/.cache/sluice)
set -euo pipefail
cd "$(dirname "$0")/.."

requirements="${PWD}/plugins/examples/python-provider/requirements.txt"
version="$(sed -n 's/^componentize-py==//p' "${requirements}")"
if [ -z "${version}" ]; then
    echo "no componentize-py==VERSION line in ${requirements}" >&2
    exit 1
fi
cache="${SLUICE_CACHE_DIR:-${HOME}/.cache/sluice}"
venv="${cache}/componentize-py-${version}"
bin="${venv}/bin/componentize-py"
installed() { [ -e "${venv}/.complete" ] && [ -x "${bin}" ]; }
if installed; then
    echo "${bin}"
    exit 0
fi

mkdir -p "${cache}"
# One installer at a time (tests build in parallel); the loser finds it installed.
exec 9>"${venv}.lock"
flock 9
if ! installed; then
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        # Debian's python3 without venv/pip: root installs it, like setup.sh's other packages.
        SUDO=()
        if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
        "${SUDO[@]}" apt-get update >&2
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends python3 python3-venv >&2
    fi
    rm -rf "${venv}"
    python3 -m venv "${venv}" >&2
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "${requirements}" >&2
    "${bin}" --version >&2
    touch "${venv}/.complete"
fi
echo "${bin}"
