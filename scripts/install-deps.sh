#!/usr/bin/env bash
# Installs the Debian 12 packages gst-grokimagine needs to build, test and run
# the demo. Does nothing when they are all present. Run as root (or via sudo).
#
#   --ci   also the tools of the CI checks (.ci/run): clang and its libFuzzer
#          and sanitizer runtimes for the fuzz targets, valgrind
set -euo pipefail

packages=(
  # build
  gcc meson ninja-build pkg-config
  libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  libsoup-3.0-dev libjson-glib-dev
  # run, test and demo: gst-launch, qtdemux/mp4mux, x264enc, avdec_h264
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav
  python3 curl fonts-dejavu-core
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

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
