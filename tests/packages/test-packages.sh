#!/usr/bin/env bash
# make test-packages: the packages as a user gets them.
#   1. amd64: a minimal Debian (debootstrap, cached in build/packages/) boots in systemd-nspawn with
#      systemd as PID 1 and its own veth; `apt install ./collector_…_amd64.deb` there, then: active
#      (running) through Type=notify; only its three capabilities and its hardening (from /proc);
#      exact counts of real traffic from the host side of the veth; survives `systemctl restart`
#      and `kill -9`; `apt purge` leaves nothing (no files, no pins, no programs on hooks).
#   2. arm64: the binary is aarch64, and under qemu-user `collector version`, `export` and `top`
#      run against the database the amd64 package wrote, with the same output as amd64.
# usage: test-packages.sh AMD64_DEB ARM64_DEB       (as root; prints "packages: N passed, N failed")
set -euo pipefail
deb_amd64=$(realpath "$1"); deb_arm64=$(realpath "$2")
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=$here/build/packages
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
machine=cpk$id                       # host side of the veth: ve-cpk<id>
run=$cache/run-$id
root=$run/root
net=10.$((160 + RANDOM % 40)).$((RANDOM % 250))
host_ip=$net.1 ct_ip=$net.2
datagrams=400 payload=958 frame=1000  # 14 Ethernet + 20 IPv4 + 8 UDP + 958
passed=0 failed=0
nspawn_pid="" echo_pid="" leader=""

say() { echo "== $*"; }
pass() { echo "  ok   $*"; passed=$((passed + 1)); }
fail() { echo "  FAIL $*"; failed=$((failed + 1)); }
# check DESCRIPTION EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then pass "$1: $3"; else fail "$1: expected '$2', got '$3'"; fi; }

cleanup() {
  set +e
  [ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid"            # nspawn asks the container's systemd to power off
    for _ in $(seq 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$nspawn_pid" 2>/dev/null
  fi
  ip link del "ve-$machine" 2>/dev/null
  mountpoint -q "$run/bpffs" && umount "$run/bpffs"
  rm -rf "$run"
}
trap cleanup EXIT

# ------------------------------------------------------------------------------------------ tree
# The Debian mirror apt uses here (deb822 .sources or a one-line .list entry) for this suite.
mirror=$(awk -v s="$suite" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==s){print u; exit}}' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(awk -v s="$suite" '$1=="deb" && $3==s {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
tarball=$cache/$suite-minbase.tar
if [ ! -f "$tarball" ]; then
  say "debootstrap $suite from $mirror (once; cached in $tarball)"
  rm -rf "$cache/debootstrap"; mkdir -p "$cache"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,libbpf1 \
    "$suite" "$cache/debootstrap" "$mirror" > "$cache/debootstrap.log" 2>&1 || { tail -n 20 "$cache/debootstrap.log"; exit 1; }
  tar -C "$cache/debootstrap" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$cache/debootstrap"
fi
mkdir -p "$root" "$run/bpffs"
tar -C "$root" -xf "$tarball"
echo "$machine" > "$root/etc/hostname"
rm -f "$root/etc/machine-id"; : > "$root/etc/machine-id"    # systemd makes one at boot

# ------------------------------------------------------------------------------------------ boot
# This host has no systemd and no D-Bus: nspawn needs a writable /run/systemd/nspawn, no machined
# registration and its own unit. BPF inside needs (each found missing here, in this order):
#   --capability=CAP_BPF,CAP_PERFMON   not in nspawn's default set (CAP_NET_ADMIN comes with the veth);
#   --system-call-filter=bpf           nspawn's own seccomp filter answers bpf(2) with EPERM otherwise;
#   a bpffs at /sys/fs/bpf             a fresh instance bound there, so the pins are visible from here
#                                      and are nobody else's.
mkdir -p /run/systemd/nspawn
mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn
mount -t bpf bpf "$run/bpffs"
say "boot $machine (systemd-nspawn --boot --network-veth)"
systemd-nspawn -D "$root" -M "$machine" --register=no --keep-unit --boot --network-veth --console=passive \
  --capability=CAP_BPF,CAP_PERFMON --system-call-filter=bpf --bind="$run/bpffs:/sys/fs/bpf" > "$run/nspawn.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 100); do
  for c in $(pgrep -P "$nspawn_pid" || true); do
    grep -Eq '^NSpid:.*[[:space:]]1$' "/proc/$c/status" 2>/dev/null && leader=$c
  done
  [ -n "$leader" ] && break; sleep 0.2
done
[ -n "$leader" ] || { cat "$run/nspawn.log"; echo "the container did not start" >&2; exit 1; }
in_ct() { nsenter -t "$leader" -m -u -i -n -p -C -r -w -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_ct_net() { nsenter --net="/proc/$leader/ns/net" -- "$@"; }
state=""
for _ in $(seq 120); do   # until the container's systemd answers, then until it has booted
  in_ct test -S /run/systemd/private && state=$(in_ct timeout 90 systemctl is-system-running --wait 2>/dev/null || true)
  [ -n "$state" ] && break; sleep 0.5
done
case "$state" in running|degraded) pass "systemd is PID 1 in the container: $state";;
  *) fail "the container's systemd did not finish booting: $state"; cat "$run/nspawn.log"; exit 1;; esac
check "PID 1 in the container" systemd "$(in_ct cat /proc/1/comm)"

ip addr add "$host_ip/24" dev "ve-$machine"; ip link set "ve-$machine" up
in_ct ip addr add "$ct_ip/24" dev host0
in_ct ip link set host0 up
in_ct ip route add default via "$host_ip"
for _ in $(seq 50); do ping -c1 -W1 "$ct_ip" >/dev/null 2>&1 && break; sleep 0.2; done

# Files before the installation, to compare with after the purge (apt's and dpkg's own records,
# logs and caches aside).
snapshot() {
  in_ct find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp \
    -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/cache -o -path /var/log -o -path /root \) -prune \
    -o -print | LC_ALL=C sort
}
snapshot > "$run/files-before"

# ------------------------------------------------------------------------------------------ install
say "apt install ./$(basename "$deb_amd64")"
cp "$deb_amd64" "$root/root/"
if in_ct env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/root/$(basename "$deb_amd64")" > "$run/apt-install.log" 2>&1; then
  pass "apt install"
else
  fail "apt install"; cat "$run/apt-install.log"; exit 1
fi

wait_active() { # prints the MainPID once the unit is active (running)
  for _ in $(seq 150); do
    if [ "$(in_ct systemctl show -p ActiveState --value collector)" = active ] &&
       [ "$(in_ct systemctl show -p SubState --value collector)" = running ]; then
      in_ct systemctl show -p MainPID --value collector; return 0
    fi
    sleep 0.2
  done
  return 1
}
pid=$(wait_active) || { fail "collector.service is not active"; in_ct journalctl -u collector --no-pager | tail -n 30; exit 1; }
check "unit type (active only after READY=1)" notify "$(in_ct systemctl show -p Type --value collector)"
check "unit state" "active (running)" "$(in_ct systemctl show -p ActiveState --value collector) ($(in_ct systemctl show -p SubState --value collector))"
check "enabled by postinst" enabled "$(in_ct systemctl is-enabled collector)"

# ------------------------------------------------------------------------------------------ hardening
say "capabilities and hardening of PID $pid, from /proc"
status=$(in_ct cat "/proc/$pid/status")
field() { echo "$status" | awk -v f="$1:" '$1==f {print $2}'; }
caps=000000c000001000            # CAP_NET_ADMIN (12), CAP_PERFMON (38), CAP_BPF (39)
for f in CapPrm CapEff CapBnd CapAmb CapInh; do check "$f" "$caps" "$(field $f)"; done   # ambient needs inheritable
check "NoNewPrivs" 1 "$(field NoNewPrivs)"
check "Seccomp (filter mode)" 2 "$(field Seccomp)"
check "runs as" 0 "$(field Uid)"
mountinfo=$(in_ct cat "/proc/$pid/mountinfo")
init_mountinfo=$(in_ct cat /proc/1/mountinfo)
mount_opts() { echo "$mountinfo" | awk -v m="$1" '$5==m {split($6,o,","); print o[1]}' | tail -n1; }
check "/ (ProtectSystem=strict)" ro "$(mount_opts /)"
check "/var/lib/collector (StateDirectory)" rw "$(mount_opts /var/lib/collector)"
check "/sys/fs/bpf" ro "$(mount_opts /sys/fs/bpf)"
check "/sys/fs/bpf/collector (ReadWritePaths)" rw "$(mount_opts /sys/fs/bpf/collector)"
check "/proc/sys (ProtectKernelTunables)" ro "$(mount_opts /proc/sys)"
check "/home (ProtectHome)" ro "$(mount_opts /home)"
check "/tmp (PrivateTmp)" yes "$(echo "$mountinfo" | awk '$5=="/tmp" && $4 ~ /systemd-private-.*collector/ {f=1} END {print f ? "yes" : "no"}')"
dev_of() { echo "$1" | awk '$5=="/dev" {d=$3} END {print d}'; }
check "/dev is its own (PrivateDevices)" yes "$([ "$(dev_of "$mountinfo")" != "$(dev_of "$init_mountinfo")" ] && echo yes || echo no)"
check "own mount namespace" yes "$([ "$(in_ct readlink "/proc/$pid/ns/mnt")" != "$(in_ct readlink /proc/1/ns/mnt)" ] && echo yes || echo no)"

# ------------------------------------------------------------------------------------------ traffic
metric() { # metric NAME DIRECTION: the value for our client on 9984/udp, 0 when absent
  curl -sf --max-time 5 "http://$ct_ip:10981/metrics" | awk -v n="$1" -v d="$2" -v c="$host_ip" '
    index($0, n "{") == 1 && index($0, "client=\"" c "\"") && index($0, "port=\"9984\"") &&
    index($0, "proto=\"udp\"") && index($0, "direction=\"" d "\"") {v=$NF} END {printf "%d\n", v+0}'
}
exchange() { python3 "$here/tests/packages/udp_exchange.py" send "$ct_ip" 9984 "$datagrams" "$payload" >/dev/null; }
# /metrics hands out one snapshot to every reader within 500 ms (SnapshotSource.MaxAge): a value may
# lag that long, so each is read until it is the expected one or 5 s have passed (a count that is
# off stays off and fails).
settled_metric() { # settled_metric NAME DIRECTION EXPECTED
  local v
  for _ in $(seq 20); do v=$(metric "$1" "$2"); [ "$v" = "$3" ] && break; sleep 0.25; done
  echo "$v"
}
check_counts() { # check_counts ROUNDS WHEN
  local n=$(( $1 * datagrams )) before=$failed
  for d in down up; do
    check "$2: $d bytes" "$(( n * frame ))" "$(settled_metric sia_traffic_bytes_total $d $(( n * frame )))"
    check "$2: $d packets" "$n" "$(settled_metric sia_traffic_packets_total $d "$n")"
  done
  if [ "$failed" != "$before" ]; then   # what the daemon said and what is attached
    in_ct journalctl -u collector --no-pager -n 25 -o cat | sed 's/^/       journal: /'
    in_ct_net python3 "$here/tests/packages/tcx_count.py" host0 | sed 's/^/       tcx: /'
  fi
}
# The echo listener runs on the container's side in its network namespace (a host process).
in_ct_net python3 "$here/tests/packages/udp_exchange.py" echo "$ct_ip" 9984 > "$run/echo.log" 2>&1 &
echo_pid=$!
for _ in $(seq 50); do grep -q listening "$run/echo.log" && break; sleep 0.1; done
say "traffic from the host side of the veth: $datagrams datagrams of $frame-byte frames to $ct_ip:9984/udp and back"
exchange; check_counts 1 "first run"
check "programs on host0's TCX hooks while it runs" "ingress 1 egress 1" "$(in_ct_net python3 "$here/tests/packages/tcx_count.py" host0)"

say "systemctl restart"
in_ct systemctl restart collector
pid2=$(wait_active) || { fail "not active after restart"; exit 1; }
check "a new process after restart" yes "$([ "$pid2" != "$pid" ] && echo yes || echo no)"
exchange; check_counts 2 "after restart"

say "kill -9 $pid2 (Restart=on-failure)"
in_ct sh -c "kill -9 $pid2"
pid3=""
for _ in $(seq 100); do
  p=$(in_ct systemctl show -p MainPID --value collector)
  if [ "$p" != 0 ] && [ "$p" != "$pid2" ]; then pid3=$(wait_active) && break; fi
  sleep 0.2
done
if [ -n "$pid3" ]; then pass "restarted by systemd after SIGKILL (PID $pid3)"; else fail "not restarted after kill -9"; exit 1; fi
exchange; check_counts 3 "after kill -9"

# The history the amd64 build wrote, for the arm64 binary below (a consistent copy of a live WAL database).
sqlite3 "$root/var/lib/collector/traffic.db" ".backup '$run/traffic.db'"

# ------------------------------------------------------------------------------------------ remove, purge
kill "$echo_pid"; echo_pid=""
say "apt remove"
if in_ct env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q collector > "$run/apt-remove.log" 2>&1; then
  pass "apt remove"
else
  fail "apt remove"; cat "$run/apt-remove.log"
fi
check "collector.service after remove" inactive "$(in_ct systemctl is-active collector || true)"
check "programs on host0's TCX hooks after remove (prerm)" "ingress 0 egress 0" "$(in_ct_net python3 "$here/tests/packages/tcx_count.py" host0)"
check "pinned counters kept by remove" present "$([ -e "$run/bpffs/collector/clients" ] && echo present || echo absent)"
check "/etc/collector.env kept by remove (conffile)" present "$(in_ct test -f /etc/collector.env && echo present || echo absent)"

say "apt purge"
if in_ct env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q collector > "$run/apt-purge.log" 2>&1; then
  pass "apt purge"
else
  fail "apt purge"; cat "$run/apt-purge.log"
fi
snapshot > "$run/files-after"
check "files left or changed by install + purge" "" "$(diff "$run/files-before" "$run/files-after" | grep '^[<>]' | tr '\n' ' ')"
check "the pin directory /sys/fs/bpf/collector" absent "$([ -e "$run/bpffs/collector" ] && echo present || echo absent)"
# Any pinned object anywhere in the container's bpffs (empty directories aside: iproute2 sometimes
# leaves its tc/ip/xdp work directories; maps.debug and progs.debug are the kernel's own).
check "pinned objects left in /sys/fs/bpf" "" \
  "$(find "$run/bpffs" -mindepth 1 ! -type d ! -type l ! -path "$run/bpffs/maps.debug" ! -path "$run/bpffs/progs.debug" | tr '\n' ' ')"
check "programs on host0's TCX hooks" "ingress 0 egress 0" "$(in_ct_net python3 "$here/tests/packages/tcx_count.py" host0)"
check "XDP program on host0" "" "$(in_ct_net ip -d link show dev host0 | grep -o 'prog/xdp.*' || true)"
check "tc filters on host0" "" "$(in_ct_net tc filter show dev host0 ingress; in_ct_net tc filter show dev host0 egress)"
check "unit known to systemd" "" "$(in_ct systemctl list-unit-files --no-legend collector.service)"
container_pids=$(readlink "/proc/$leader/ns/pid")
check "collector processes in the container" "" "$(for p in /proc/[0-9]*; do
  [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$container_pids" ] && [ "$(cat "$p/comm" 2>/dev/null)" = collector ] && echo "${p#/proc/}"; done)"

# ------------------------------------------------------------------------------------------ no systemd
# The same package where systemd does not run (a chroot, as when an image is built): installed,
# neither enabled nor started; purged without a trace. No /proc, /sys or /run/systemd in there.
say "dpkg -i and --purge in a chroot, where systemd does not run"
chrooted=$run/chroot
mkdir -p "$chrooted"; tar -C "$chrooted" -xf "$tarball"
cp "$deb_amd64" "$chrooted/root/"
chroot_files() { (cd "$chrooted" && find . \( -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache -o -path ./root \) -prune -o -print | LC_ALL=C sort); }
chroot_files > "$run/chroot-before"
if chroot "$chrooted" dpkg -i "/root/$(basename "$deb_amd64")" > "$run/chroot-install.log" 2>&1; then pass "dpkg -i"; else fail "dpkg -i"; cat "$run/chroot-install.log"; fi
check "postinst says systemd is not running" yes "$(grep -q 'systemd is not running' "$run/chroot-install.log" && echo yes || echo no)"
check "enabled without systemd" "" "$(find "$chrooted/etc/systemd/system" -name collector.service)"
check "installed" "ii" "$(chroot "$chrooted" dpkg-query -W -f='${db:Status-Abbrev}' collector | tr -d ' ')"
if chroot "$chrooted" dpkg --purge collector > "$run/chroot-purge.log" 2>&1; then pass "dpkg --purge"; else fail "dpkg --purge"; cat "$run/chroot-purge.log"; fi
chroot_files > "$run/chroot-after"
check "files left by install + purge without systemd" "" "$(diff "$run/chroot-before" "$run/chroot-after" | grep '^[<>]' | tr '\n' ' ')"

# ------------------------------------------------------------------------------------------ arm64
say "arm64 under qemu-user ($(basename "$deb_arm64"))"
dpkg-deb -x "$deb_arm64" "$run/arm64"; dpkg-deb -x "$deb_amd64" "$run/amd64"
arm=$run/arm64/usr/lib/collector/collector amd=$run/amd64/usr/lib/collector/collector
check "file" "ARM aarch64" "$(file -b "$arm" | grep -o 'ARM aarch64')"
version=$(dpkg-deb -f "$deb_arm64" Version)
out=$(qemu-aarch64-static "$arm" version 2>&1) && pass "collector version exits 0" || fail "collector version: $out"
check "collector version (first line)" "collector $version" "$(echo "$out" | head -n1)"
check "libbpf found (arm64 libbpf1)" yes "$(echo "$out" | grep -Eq '^libbpf v?[0-9]' && echo yes || echo no)"
echo "$out" | sed 's/^/       /'
rows=$(SQLITE_PATH=$run/traffic.db "$amd" --config /dev/null export --format csv | grep -c "$host_ip" || true)
[ "$rows" -gt 0 ] && pass "the amd64 database holds $rows rows of our client" || fail "the amd64 database holds no rows of our client"
for cmd in "top --since 1h" "export --format csv" "export --format json"; do
  a=$(SQLITE_PATH=$run/traffic.db "$amd" --config /dev/null $cmd 2>&1) || fail "amd64 $cmd: $a"
  b=$(SQLITE_PATH=$run/traffic.db qemu-aarch64-static "$arm" --config /dev/null $cmd 2>&1) || fail "arm64 $cmd: $b"
  if [ -n "$a" ] && [ "$a" = "$b" ]; then pass "arm64 collector $cmd = amd64 ($(echo "$b" | wc -l) lines)"
  else fail "arm64 collector $cmd differs from amd64:"; diff <(echo "$a") <(echo "$b") | head -n 10; fi
done

echo "packages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
