#!/usr/bin/env bash
# Installs what nbi needs on Debian 12 (bookworm) or a derivative: R with its headers and
# compilers, OpenBLAS, and nbi's R dependencies as Debian packages.
#
#   bash tools/setup.sh            # uses sudo when not run as root
#   NBI_NO_SUGGESTS=1 bash tools/setup.sh   # only what is needed to install and run nbi
#
# Then, from the repository root:  R CMD INSTALL .
set -euo pipefail

packages=(
  r-base-dev                # R, its headers, gcc and gfortran
  libopenblas0-pthread      # a fast BLAS: nbi's matrix products go through R's BLAS
  r-cran-generics r-cran-future r-cran-future.apply r-cran-progressr r-cran-posterior
)
if [ "${NBI_NO_SUGGESTS:-0}" != "1" ]; then
  # tests, vignettes and Pareto-smoothed importance weights
  packages+=(r-cran-testthat r-cran-knitr r-cran-rmarkdown r-cran-loo pandoc)
fi

if [ "$(id -u)" = "0" ]; then
  as_root=()
elif command -v sudo > /dev/null 2>&1; then
  as_root=(sudo)
else
  echo "tools/setup.sh: run as root or install sudo; it needs apt-get install" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${packages[@]}"

echo "tools/setup.sh: done. R uses BLAS $(Rscript -e 'cat(extSoftVersion()[["BLAS"]])')"
