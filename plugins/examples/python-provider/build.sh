#!/usr/bin/env bash
# Builds the Python metric provider into a WebAssembly component and prints the path of the
# `.wasm`. The result is cached by the hash of its inputs (app.py, the WIT files, the pinned
# componentize-py version), so a rebuild of unchanged sources takes well under a second.
#
# Usage: build.sh [OUTPUT.wasm]     (copies the component there as well)
# Environment:
#   SLUICE_CACHE_DIR   cache root (default: ~/.cache/sluice)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "${here}/../../.." && pwd)"

inputs_hash() {
    (
        cd "${root}"
        find wit -name '*.wit' | LC_ALL=C sort | xargs sha256sum
        sha256sum plugins/examples/python-provider/app.py \
            plugins/examples/python-provider/requirements.txt
    ) | sha256sum | cut -c1-16
}

out="${SLUICE_CACHE_DIR:-${HOME}/.cache/sluice}/python-provider/$(inputs_hash)"
wasm="${out}/python_provider.wasm"
if [ ! -s "${wasm}" ]; then
    componentize_py="$(bash "${root}/scripts/install-componentize-py.sh")"
    mkdir -p "${out}"
    staging="$(mktemp "${out}/build.XXXXXX")"
    trap 'rm -f "${staging}"' EXIT
    (
        cd "${here}"
        PYTHONDONTWRITEBYTECODE=1 "${componentize_py}" --quiet -d "${root}/wit" -w sluice:plugin/metric-provider-plugin \
            componentize app -o "${staging}"
    ) >&2
    mv "${staging}" "${wasm}"
    trap - EXIT
fi
if [ $# -ge 1 ]; then
    cp "${wasm}" "$1"
fi
echo "${wasm}"
