#!/usr/bin/env bash
# Makes apt serve packages of a foreign Debian architecture (multiarch), e.g. arm64 on an amd64
# machine: `dpkg --add-architecture ARCH` and an apt-get update, only when ARCH is not enabled yet.
# Used by `make deb` (arm64 libraries for dpkg-shlibdeps) and `make test-packages` (arm64 libbpf1
# for running the arm64 binary under qemu-user). The packages themselves: scripts/ensure-packages.sh.
set -euo pipefail
arch=${1:?usage: ensure-foreign-arch.sh ARCH}
[ "$arch" = "$(dpkg --print-architecture)" ] && exit 0
dpkg --print-foreign-architectures | grep -qx "$arch" && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: the Debian architecture $arch is not enabled — run as root (sudo make ...) or: dpkg --add-architecture $arch && apt-get update" >&2
  exit 1
fi
echo "enabling the Debian architecture $arch (multiarch)"
dpkg --add-architecture "$arch"
apt-get update -q >/dev/null
