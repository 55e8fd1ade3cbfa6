#!/usr/bin/env bash
# The packages motionpipe needs on a lent GPU machine, in one carried file.
#
# Its image has Python 3.12 with torch, torchvision, opencv, numpy, pyarrow, psutil, tqdm and pyyaml, but not
# ray, av, decord or webdataset, and it cannot fetch anything. A device call carries at most 64 MiB; their wheels
# are 123 MB. Unpacked, without Ray's Java jars, rllib, serve and llm, with Ray's debug symbols stripped and compressed
# with xz, they are ~57 MB.
#
#   here:   bash benchmarks/device_packages.sh build [PYTHON_VERSION]   -> .devsite/site.tar.xz (kept if done)
#   there:  bash benchmarks/device_packages.sh install                  (carry .devsite)
#
# `install` unpacks them into the python3's own site-packages, puts this checkout on its path with a .pth file
# (so Ray's worker processes find both), and writes the `ray` and `motionpipe` commands beside that python3
# (the benchmarks and tests look for them there). Nothing is built: the image's setuptools may be too old.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(ray==2.60.0 av==18.1.0 decord==0.6.0 webdataset==1.0.2 braceexpand==0.1.7 jsonschema==4.26.0
    jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1)
ARCHIVE=.devsite/site.tar.xz
LIMIT_BYTES=$((62 * 1024 * 1024))  # a call carries 64 MiB, the checkout (~1 MB) included

build() {
    local version=${1:-3.12}
    local stamp
    stamp=".devsite/built-$(echo "$version ${PACKAGES[*]}" | sha1sum | cut -c1-12)"
    if [[ -f $stamp && -f $ARCHIVE ]]; then
        echo "$ARCHIVE is up to date ($(du -h "$ARCHIVE" | cut -f1))"
        return
    fi
    local work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    local platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
        "${platforms[@]}" -d "$work/wheels" "${PACKAGES[@]}"
    python3 -m pip install -q --no-deps --no-compile --ignore-requires-python --only-binary=:all: \
        --python-version "$version" --implementation cp "${platforms[@]}" --target "$work/site" "$work"/wheels/*.whl
    rm -rf "$work/site/bin" "$work/site/ray/jars" "$work/site/ray/rllib" "$work/site/ray/serve" "$work/site/ray/llm"
    # Ray's own binaries only: stripping a library that auditwheel patched (decord's) breaks its loading
    strip --strip-unneeded "$work/site/ray/_raylet.so" "$work/site/ray/core/src/ray/raylet/raylet" \
        "$work/site/ray/core/src/ray/gcs/gcs_server"
    mkdir -p .devsite
    rm -f .devsite/built-*
    tar -C "$work/site" -cf - . | xz -9e -T1 >"$ARCHIVE"  # -9e: 57 MB where the default gives 64
    local size
    size=$(stat -c %s "$ARCHIVE")
    if ((size > LIMIT_BYTES)); then
        echo "$ARCHIVE is $size bytes, over the $LIMIT_BYTES a device call can carry with the checkout" >&2
        exit 1
    fi
    touch "$stamp"
    echo "wrote $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1)) for Python $version"
}

# A console script beside the interpreter, as pip writes one: $1 its name, $2 the module whose main() it runs
# (guarded: sample-data's process pool spawns, which runs the script again).
write_command() {
    printf '#!%s\nimport sys\nfrom %s import main\nif __name__ == "__main__":\n    sys.exit(main())\n' \
        "$python" "$2" >"$bin/$1"
    chmod +x "$bin/$1"
}

install() {
    local site
    python=$(command -v python3)
    bin=$(dirname "$python")
    site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    tar -C "$site" -xJf "$ARCHIVE"
    pwd >"$site/motionpipe-checkout.pth"  # the checkout on every process's path, Ray's workers included
    write_command ray ray.scripts.scripts
    write_command motionpipe motionpipe.pipeline.cli
    "$python" -c 'import av, decord, ray, webdataset; print("ray", ray.__version__, "av", av.__version__)'
}

case ${1:-} in
build) build "${2:-}" ;;
install) install ;;
*)
    echo "usage: $0 build [PYTHON_VERSION] | install" >&2
    exit 2
    ;;
esac
