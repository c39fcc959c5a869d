#!/usr/bin/env bash
# Stages and builds one Debian package from already built parts (make deb calls it per architecture):
#   build-deb.sh ARCH VERSION PUBLISH_DIR BPF_OBJECT OUTPUT.deb
# PUBLISH_DIR holds the Native AOT `collector` and SQLite's libe_sqlite3.so for ARCH.
# Reproducible: every mtime is SOURCE_DATE_EPOCH (default: the last commit's time), owners are
# root:root, compressed docs carry no name or time (gzip -n), and dpkg-deb sorts the members.
set -euo pipefail
arch=$1 version=$2 publish=$3 bpf_object=$4 output=$5
here=$(cd "$(dirname "$0")/.." && pwd)
debian=$here/packaging/debian
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct)}
case $arch in amd64) triplet=x86_64-linux-gnu;; arm64) triplet=aarch64-linux-gnu;; *) echo "unknown arch $arch" >&2; exit 1;; esac

work=$(realpath -m "$publish/..")/stage     # build/deb/<arch>/stage
root=$work/root
rm -rf "$work"; mkdir -p "$root/DEBIAN"
umask 022

# --- files ----------------------------------------------------------------------------------------
install -D -m 0755 "$publish/collector" "$root/usr/lib/collector/collector"
# SQLite as SQLitePCLRaw ships it, without its symbol table (dh_strip would do the same).
install -d "$root/usr/lib/collector"
llvm-strip --strip-unneeded -o "$root/usr/lib/collector/libe_sqlite3.so" "$publish/libe_sqlite3.so"
chmod 0644 "$root/usr/lib/collector/libe_sqlite3.so"
# The daemon looks for collector.bpf.o beside its binary first. Debug info stripped, BTF kept
# (libbpf needs .BTF and .BTF.ext to load the maps and relocate).
llvm-strip --strip-debug -o "$root/usr/lib/collector/collector.bpf.o" "$bpf_object"
chmod 0644 "$root/usr/lib/collector/collector.bpf.o"
mkdir -p "$root/usr/bin"
ln -s ../lib/collector/collector "$root/usr/bin/collector"
install -d "$root/lib/systemd/system"
sed 's|^ExecStart=/usr/local/bin/collector|ExecStart=/usr/bin/collector|' "$here/collector.service" > "$root/lib/systemd/system/collector.service"
grep -q '^ExecStart=/usr/bin/collector run$' "$root/lib/systemd/system/collector.service"
# Mode 0600: it may hold API_TOKEN.
install -D -m 0600 "$here/collector.env.example" "$root/etc/collector.env"

doc=$root/usr/share/doc/collector
install -D -m 0644 "$debian/copyright" "$doc/copyright"
install -m 0644 "$here/README.md" "$doc/README.md"
[ -f "$here/CHANGELOG.md" ] && install -m 0644 "$here/CHANGELOG.md" "$doc/NEWS.md"
for f in "$here"/docs/*.md; do [ -f "$f" ] && install -m 0644 "$f" "$doc/$(basename "$f")"; done
install -d "$doc/examples/prometheus" "$doc/examples/grafana"
install -m 0644 "$here"/prometheus/*.yml "$doc/examples/prometheus/"
cp -r "$here"/grafana/. "$doc/examples/grafana/"
find "$doc/examples" -type d -exec chmod 0755 {} + ; find "$doc/examples" -type f -exec chmod 0644 {} +
commit=${DEB_COMMIT:-$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)}
{
  echo "collector ($version) unstable; urgency=medium"
  echo
  echo "  * Built from commit $commit."
  echo
  echo " -- sia-exporter maintainers <maintainers@users.noreply.b-seed-84d57de2.example>  $(LC_ALL=C date -u -R -d "@$epoch")"
} > "$doc/changelog"
# Policy 12.3: documentation compressed with gzip -9n (the copyright file excepted; the examples
# stay as they are, ready to copy into Grafana and Prometheus).
find "$doc" -path "$doc/examples" -prune -o -type f ! -name copyright -size +4k -exec gzip -9n {} +
install -D -m 0644 "$debian/collector.1" "$root/usr/share/man/man1/collector.1"
gzip -9n "$root/usr/share/man/man1/collector.1"
[ -f "$doc/changelog" ] && gzip -9n "$doc/changelog"

# --- control --------------------------------------------------------------------------------------
# Depends: what the ELF files link (dpkg-shlibdeps, for ARCH), plus libbpf1, which the daemon loads
# with dlopen (libbpf.so.1, at least 1.0) and which therefore no linker records.
shlibs=$work/shlibs
mkdir -p "$shlibs/debian"
printf 'Source: collector\n\nPackage: collector\nArchitecture: any\n' > "$shlibs/debian/control"
(cd "$shlibs" && DEB_HOST_ARCH=$arch DEB_HOST_MULTIARCH=$triplet dpkg-shlibdeps -O \
   -l/usr/lib/$triplet -l/lib/$triplet \
   "$root/usr/lib/collector/collector" "$root/usr/lib/collector/libe_sqlite3.so" 2>"$work/shlibdeps.log") > "$work/substvars" \
  || { cat "$work/shlibdeps.log" >&2; exit 1; }
depends=$(sed -n 's/^shlibs:Depends=//p' "$work/substvars")
depends="${depends:+$depends, }libbpf1 (>= 1:1.0)"
rm -rf "$shlibs"

size=$(du -s -k --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
  "$debian/control.in" > "$root/DEBIAN/control"
echo /etc/collector.env > "$root/DEBIAN/conffiles"
install -m 0755 "$debian/postinst" "$debian/prerm" "$debian/postrm" "$root/DEBIAN/"
install -D -m 0644 "$debian/lintian-overrides" "$root/usr/share/lintian/overrides/collector"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

find "$root" -exec touch -h -d "@$epoch" {} +
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz --build "$root" "$output" >/dev/null
echo "built $output (Depends: $depends)"
