#!/bin/sh
# Make, here (where PyPI and the data are), the two git-ignored folders that the device tool's
# `carry` takes to the GPU machine for benchmarks/gpu_check.py (see benchmarks/gpu_check.md):
#   .gpu_wheels/  the wheels pinned in benchmarks/gpu_wheels.txt (pytest, IPython, ipywidgets and
#                 their dependencies; nothing the machine has, no torch), for CPython 3.12 on
#                 manylinux x86_64, without their dependencies: gpu_check.py unpacks them there,
#                 offline and without pip;
#   .data/        Fashion-MNIST recompressed with xz (26.5 MB; 30.9 MB as .gz), which gpu_check.py
#                 unpacks into a temporary folder there (the machine has no internet).
# Then it prints what the tree and both folders add up to, against the tool's 64 MiB.
#
#     sh benchmarks/gpu_carry.sh [PYTHON_VERSION]       # 3.12 unless told (the machine's Python)
set -eu
cd "$(dirname "$0")/.."
py=${1:-3.12}
src=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}

rm -rf .gpu_wheels
mkdir .gpu_wheels
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$py" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -r benchmarks/gpu_wheels.txt -d .gpu_wheels
echo ".gpu_wheels: $(ls .gpu_wheels/*.whl | wc -l) wheels for Python $py, $(du -cb .gpu_wheels/*.whl | tail -1 | cut -f1) bytes"

mkdir -p .data
for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ ! -s ".data/$stem.xz" ]; then
        zcat "$src/$stem.gz" | xz -9 -T1 > ".data/$stem.xz.part" && mv ".data/$stem.xz.part" ".data/$stem.xz"
    fi
done
echo ".data: $(du -cb .data/* | tail -1 | cut -f1) bytes ($(ls .data | tr '\n' ' '))"

tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | awk '/\ttotal$/ {s += $1} END {print s}')
total=$((tree + $(du -cb .gpu_wheels/* .data/* | tail -1 | cut -f1)))
echo "carried: the tree $tree + .gpu_wheels + .data = $total bytes of $((64 * 1024 * 1024)) (64 MiB)"
[ "$total" -le $((64 * 1024 * 1024)) ] || { echo "over the device tool's 64 MiB" >&2; exit 1; }
