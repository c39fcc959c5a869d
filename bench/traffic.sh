#!/usr/bin/env bash
# Traffic bench: what does the running daemon cost a host's throughput?
#
#   bench/traffic.sh [path/to/collector]      (make bench-traffic; as root)
#
# A veth pair STEMh (host, 10.250.99.1) <-> STEMn (netns STEM, 10.250.99.2), pins in
# /sys/fs/bpf/STEM, where STEM is sxt<pid>-0: the tests' owned-name scheme (tests/.../Fixtures/
# TestNetwork.cs, OwnedNames), so a concurrent run never collides with this one and the next test
# run removes what a SIGKILLed bench left behind. This stays a shell script because it drives the
# shipped binary with iperf3, curl and awk as an operator would. iperf3 server in the netns on 9984, client on the host, so every frame crosses the host's XDP ingress and TC egress
# programs and is counted (9984/tcp and 9984/udp). Three tests per round:
#   tcp-up    host -> netns TCP (data through tc_egress, ACKs through xdp_ingress)
#   tcp-down  netns -> host TCP (iperf3 -R: data through xdp_ingress)
#   udp-up    host -> netns UDP, unlimited rate (-b 0)
# Rounds alternate: daemon attached (collector run ...), then not attached. Throughput with/without and
# the ratio are printed side by side, with the frames/s and bytes/s the host totals on /metrics saw,
# the daemon's CPU time and RSS, and the kernel's own per-run cost of the programs.
#
# Environment: ROUNDS (3), SECONDS_PER_RUN (5), XDP_MODE (auto), METRICS_PORT (19984), KEEP_LOGS=1.
set -euo pipefail

COLLECTOR=${1:-build/collector}
ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${SECONDS_PER_RUN:-5}
XDP_MODE=${XDP_MODE:-auto}
PORT=9984
METRICS_PORT=${METRICS_PORT:-19984}
STEM=sxt$$-0
NS=$STEM
HOST_IF=${STEM}h
PEER_IF=${STEM}n
HOST_IP=10.250.99.1
PEER_IP=10.250.99.2
PIN_DIR=/sys/fs/bpf/$STEM
TESTS=(tcp-up tcp-down udp-up)

die() { echo "bench/traffic.sh: error: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (loading eBPF and creating a netns need it)"
[[ -x $COLLECTOR ]] || die "$COLLECTOR is not an executable; build it with 'make build'"
for tool in iperf3 ip curl awk; do command -v "$tool" >/dev/null || die "$tool is not installed (make deps-test)"; done
[[ -f $(dirname "$COLLECTOR")/collector.bpf.o ]] || die "no collector.bpf.o beside $COLLECTOR; build it with 'make build'"
COLLECTOR=$(readlink -f "$COLLECTOR")

WORK=$(mktemp -d /tmp/traffic-bench.XXXXXX)
DAEMON_PID=
SERVER_PID=

stop_daemon() {
	if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID"
		for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "warning: the daemon ignored SIGTERM for 10 s; killing it" >&2
			kill -KILL "$DAEMON_PID" 2>/dev/null || true
		fi
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	DAEMON_PID=
}

remove_network() {
	ip link del "$HOST_IF" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$PIN_DIR"
}

cleanup() {
	local status=$?
	stop_daemon
	if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
	remove_network
	if [[ ${KEEP_LOGS:-0} == 1 || $status -ne 0 ]]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- network
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$PEER_IF" netns "$NS"
ip addr add "$HOST_IP/30" dev "$HOST_IF"
ip link set "$HOST_IF" up
ip -n "$NS" addr add "$PEER_IP/30" dev "$PEER_IF"
ip -n "$NS" link set "$PEER_IF" up
ip -n "$NS" link set lo up
ip netns exec "$NS" iperf3 -s -p "$PORT" >"$WORK/iperf3-server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
	ip netns exec "$NS" ss -Hltn "sport = :$PORT" | grep -q . && break
	sleep 0.1
done
ip netns exec "$NS" ss -Hltn "sport = :$PORT" | grep -q . || die "iperf3 server did not start (see $WORK/iperf3-server.log)"

# ---------------------------------------------------------------- daemon
metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics"; }

# Sum of one metric over every series: metric_sum NAME FILE
metric_sum() { awk -v m="$1" '$1 ~ "^"m"({|$)" { s += $NF } END { printf "%.0f\n", s }' "$2"; }
# the same, as a real number (seconds)
metric_fsum() { awk -v m="$1" '$1 ~ "^"m"({|$)" { s += $NF } END { printf "%.9f\n", s }' "$2"; }

start_daemon() {
	local dir=$WORK/daemon-$1
	mkdir -p "$dir"
	rm -rf "$PIN_DIR"
	"$COLLECTOR" run --interface "$HOST_IF" --listen-address "127.0.0.1:$METRICS_PORT" \
		--sqlite-path "$dir/traffic.db" --state-directory "$dir" --pin-directory "$PIN_DIR" \
		--xdp-mode "$XDP_MODE" >"$dir/daemon.log" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 150); do
		kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$dir/daemon.log" >&2; DAEMON_PID=; die "the daemon exited during start-up (log above)"; }
		if metrics >"$dir/start.prom" 2>/dev/null && grep -q '^sia_exporter_bpf_attached.*hook="tc_egress".* 1$' "$dir/start.prom"; then
			return 0
		fi
		sleep 0.1
	done
	cat "$dir/daemon.log" >&2
	die "no /metrics with the hooks attached after 15 s (log above)"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# utime+stime of a process in seconds, and RSS / peak RSS in MiB
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"; }
proc_rss() { awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { printf "%.0f %.0f\n", r / 1024, h / 1024 }' "/proc/$1/status"; }

# ---------------------------------------------------------------- one iperf3 run
# run_test TEST LABEL -> prints "Mbit/s" and keeps iperf3's output
run_test() {
	local test=$1 label=$2 args=(-c "$PEER_IP" -p "$PORT" -t "$RUN_SECONDS" -f m -A 0,1) side=receiver
	case $test in
		tcp-up) ;;
		tcp-down) args+=(-R) ;;
		udp-up) args+=(-u -b 0 -l 1400); side=sender ;; # what the host pushed through tc_egress; receiver loss is the netns' own
	esac
	local out=$WORK/$label-$test.txt
	iperf3 "${args[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "iperf3 $test failed (output above)"; }
	# TCP: the receiver's view (what arrived); UDP -b 0: the sender's (CPU-bound)
	awk -v side="$side" '$0 ~ side { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) } END { if (v == "") exit 1; print v }' "$out" ||
		die "no receiver summary in $out"
}

declare -A WITH WITHOUT RATE_FRAMES RATE_BYTES
DAEMON_CPU=()
DAEMON_RSS=()
DAEMON_PEAK=()
BPF_NS=()
BPF_CPU=()
TRAFFIC_SECONDS=$((${#TESTS[@]} * RUN_SECONDS))
bench_start=$(date +%s)

with_daemon() {
	local round=$1 dir=$WORK/daemon-$1 cpu0 cpu1 rss peak runs run_time frames bytes t0 t1 test
	start_daemon "$round"
	cpu0=$(proc_cpu "$DAEMON_PID")
	for test in "${TESTS[@]}"; do
		metrics >"$dir/$test.before.prom"
		t0=$(date +%s.%N)
		WITH[$round,$test]=$(run_test "$test" "with-$round")
		t1=$(date +%s.%N)
		metrics >"$dir/$test.after.prom"
		frames=$(( $(metric_sum sia_traffic_host_packets_total "$dir/$test.after.prom") - $(metric_sum sia_traffic_host_packets_total "$dir/$test.before.prom") ))
		bytes=$(( $(metric_sum sia_traffic_host_bytes_total "$dir/$test.after.prom") - $(metric_sum sia_traffic_host_bytes_total "$dir/$test.before.prom") ))
		RATE_FRAMES[$round,$test]=$(awk -v n="$frames" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
		RATE_BYTES[$round,$test]=$(awk -v n="$bytes" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
	done
	cpu1=$(proc_cpu "$DAEMON_PID")
	read -r rss peak < <(proc_rss "$DAEMON_PID")
	metrics >"$dir/end.prom"
	runs=$(metric_sum sia_exporter_bpf_runs_total "$dir/end.prom")
	run_time=$(metric_fsum sia_exporter_bpf_run_time_seconds_total "$dir/end.prom")
	BPF_NS+=("$(awk -v t="$run_time" -v n="$runs" 'BEGIN { if (n > 0) printf "%.0f", t * 1e9 / n; else print "n/a" }')")
	# the programs' own CPU: kernel run time over the wall time of the round's traffic
	BPF_CPU+=("$(awk -v t="$run_time" -v t0="$(metric_fsum sia_exporter_bpf_run_time_seconds_total "$dir/start.prom")" -v s="$TRAFFIC_SECONDS" \
		'BEGIN { printf "%.1f", 100 * (t - t0) / s }')")
	DAEMON_CPU+=("$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')")
	DAEMON_RSS+=("$rss")
	DAEMON_PEAK+=("$peak")
	stop_daemon
	grep -q 'detached' "$dir/daemon.log" || echo "warning: round $round: the daemon did not log its detach on SIGTERM" >&2
	if ip link show "$HOST_IF" | grep -q 'xdp'; then die "XDP is still attached to $HOST_IF after SIGTERM"; fi
}

without_daemon() {
	local test
	for test in "${TESTS[@]}"; do WITHOUT[$1,$test]=$(run_test "$test" "without-$1"); done
}

echo "traffic bench: ${#TESTS[@]} tests × $ROUNDS rounds × ${RUN_SECONDS}s, daemon $COLLECTOR (XDP_MODE=$XDP_MODE), $(nproc) CPUs, kernel $(uname -r)"
echo "load average before: $(loadavg) (anything else running on this host skews the figures)"
for round in $(seq "$ROUNDS"); do
	# alternate which goes first, so a drift in the host's load hits both sides alike
	if (( round % 2 )); then with_daemon "$round"; without_daemon "$round"
	else without_daemon "$round"; with_daemon "$round"; fi
	echo "  round $round done ($(( $(date +%s) - bench_start )) s, load $(loadavg))"
done

# ---------------------------------------------------------------- report
printf '\n%-9s %5s %14s %14s %7s %14s %14s\n' test round "with Mbit/s" "without Mbit/s" ratio "frames/s" "MB/s counted"
for test in "${TESTS[@]}"; do
	sum_with=0 sum_without=0
	for round in $(seq "$ROUNDS"); do
		w=${WITH[$round,$test]} wo=${WITHOUT[$round,$test]}
		printf '%-9s %5s %14.0f %14.0f %6.1f%% %14s %14.1f\n' "$test" "$round" "$w" "$wo" \
			"$(awk -v a="$w" -v b="$wo" 'BEGIN { print 100 * a / b }')" "${RATE_FRAMES[$round,$test]}" \
			"$(awk -v b="${RATE_BYTES[$round,$test]}" 'BEGIN { print b / 1e6 }')"
		sum_with=$(awk -v a="$sum_with" -v b="$w" 'BEGIN { print a + b }')
		sum_without=$(awk -v a="$sum_without" -v b="$wo" 'BEGIN { print a + b }')
	done
	printf '%-9s %5s %14.0f %14.0f %6.1f%%   (mean over rounds; target >= 97%%)\n' "$test" all \
		"$(awk -v s="$sum_with" -v n="$ROUNDS" 'BEGIN { print s / n }')" \
		"$(awk -v s="$sum_without" -v n="$ROUNDS" 'BEGIN { print s / n }')" \
		"$(awk -v a="$sum_with" -v b="$sum_without" 'BEGIN { print 100 * a / b }')"
done

printf '\ndaemon per round (%d s of traffic each):\n' "$TRAFFIC_SECONDS"
for i in "${!DAEMON_CPU[@]}"; do
	printf '  round %d: daemon CPU %s s (%.1f%% of one CPU), RSS %s MiB (peak %s MiB); programs %s ns per run, %s%% of one CPU\n' "$((i + 1))" \
		"${DAEMON_CPU[$i]}" "$(awk -v c="${DAEMON_CPU[$i]}" -v s="$TRAFFIC_SECONDS" 'BEGIN { print 100 * c / s }')" \
		"${DAEMON_RSS[$i]}" "${DAEMON_PEAK[$i]}" "${BPF_NS[$i]}" "${BPF_CPU[$i]}"
done
echo "frames/s and MB/s: the change of sia_traffic_host_{packets,bytes}_total (both directions) over the run."
echo "CPU: user+system time of the daemon process over the traffic of a round (map reads, scrapes); the"
echo "programs' own cost is kernel (softirq) time: ns per run and share of one CPU, from BPF stats when run with BPF_STATS=on (off by default: timing every run costs throughput itself)."
echo "Throughput on a shared 2-CPU host can swing 2x between runs; the programs' CPU share is the steadier cost figure."

verdict=0
for test in "${TESTS[@]}"; do
	sum_with=0 sum_without=0
	for round in $(seq "$ROUNDS"); do
		sum_with=$(awk -v a="$sum_with" -v b="${WITH[$round,$test]}" 'BEGIN { print a + b }')
		sum_without=$(awk -v a="$sum_without" -v b="${WITHOUT[$round,$test]}" 'BEGIN { print a + b }')
	done
	if awk -v a="$sum_with" -v b="$sum_without" 'BEGIN { exit !(a < 0.97 * b) }'; then
		echo "BELOW TARGET: $test keeps $(awk -v a="$sum_with" -v b="$sum_without" 'BEGIN { printf "%.1f", 100 * a / b }')% of its throughput with the daemon attached"
		verdict=1
	fi
done
if grep -q 'xdp (native)' "$WORK"/daemon-1/daemon.log; then
	echo "note: XDP ran in native mode on the veth $HOST_IF. Native XDP on a veth turns TSO off on its peer"
	echo "      ($PEER_IF: tcp-segmentation-offload off), so the peer sends MTU-sized frames: expect tcp-down"
	echo "      to suffer. XDP_MODE=generic (the skb path) avoids it; a physical NIC is not affected this way."
fi
[[ $verdict == 0 ]] && echo "every test kept >= 97% of its throughput (mean over $ROUNDS rounds)"
echo "total bench time: $(( $(date +%s) - bench_start )) s"
