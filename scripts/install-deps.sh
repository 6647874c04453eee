#!/usr/bin/env bash
# Installs the Debian 12 packages gst-grokimagine needs to build, test and run
# the demo, the examples and the benchmark. Installs nothing when they are all
# present. Then checks, by name, every GStreamer element those programs
# create (scripts/gst-elements.txt) and fails naming any that is missing and
# the package that has it. Run as root (or via sudo).
#
#   --ci   also the tools of the CI checks (.ci/run): clang and its libFuzzer
#          and sanitizer runtimes for the fuzz targets, valgrind
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
elements=$here/gst-elements.txt

packages=(
  # build
  gcc meson ninja-build pkg-config
  libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  libsoup-3.0-dev libjson-glib-dev
  # run, test and demo: gst-launch-1.0 and gst-inspect-1.0, and a font for
  # the simulator's textoverlay; the packages of the elements come from
  # gst-elements.txt below
  gstreamer1.0-tools python3 curl fonts-dejavu-core
  # the Python batch example (PyGObject), and the tests' throwaway TLS CA
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 openssl
)
ci_packages=(
  # fuzz targets: clang, and libFuzzer with ASan/UBSan runtimes for clang
  # (gcc brings its own sanitizer runtimes for the sanitizer build)
  clang libclang-rt-14-dev
  # memcheck, and the glibc debug symbols its suppressions name
  valgrind libc6-dbg
  # the benchmark's result host and tools
  nginx-light jq time
)
for arg in "$@"; do
  case $arg in
    --ci) packages+=("${ci_packages[@]}") ;;
    *) echo "usage: $0 [--ci]" >&2; exit 2 ;;
  esac
done

# The packages that have the elements the programs create
while read -r element package _ || [ -n "$element" ]; do
  case $element in ''|'#'*) continue ;; esac
  [[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
done <"$elements"

# check_elements: every element of gst-elements.txt exists, by name
check_elements() {
  local element package bad=0
  while read -r element package _ || [ -n "$element" ]; do
    case $element in ''|'#'*) continue ;; esac
    if ! gst-inspect-1.0 --exists "$element" 2>/dev/null; then
      echo "install-deps: the GStreamer element '$element' is missing; it is in the Debian package '$package' (apt-get install $package)" >&2
      bad=1
    fi
  done <"$elements"
  return $bad
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
check_elements
