#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet.
# apt-get update runs only when something is missing, so a ready machine pays nothing.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing Debian packages: ${missing[*]} — run as root (sudo make ...) or install them: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# tshark asks whether non-root users may capture; the answer does not matter to us (we run as root).
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
# Debian's prometheus package starts a server on :9090 where systemd runs; the tests start their own.
if [ -d /run/systemd/system ] && printf '%s\n' "${missing[@]}" | grep -qx prometheus; then
  systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
