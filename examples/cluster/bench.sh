#!/bin/sh
# What a notification costs the cluster against one SQLite node, measured
# in one go on this machine (docs/cluster.md, "CPU per notification"):
# the same load tool and the same runs against one `heraldsvc serve --db`
# and then the cluster of examples/cluster/run.sh (three NATS servers,
# three nodes), devices on the first node and notifications posted to the
# other two. CPU per notification is the CPU time of every process of the
# service (from /proc/PID/stat, from the first POST until a second after
# the last delivery) over the notifications delivered.
#
# Between the two, the store `jetstream` is the JetStream floor: the three
# NATS servers of run.sh alone (run.sh --nats-only) and
# `heraldbench --jetstream-floor`, which makes for each message the fewest
# operations any Herald on a replicated stream needs (a publish waiting
# for its PubAck, one delivery to one consumer, one purge), at the same
# senders and rates; its CPU per notification is the NATS servers' only.
#
#   examples/cluster/bench.sh [OUT_DIR]
#
# STORES picks what to measure ("sqlite jetstream cluster" by default);
# RUNS the runs, each "SENDERS:RATE:DURATION" (default: a closed loop at 4
# and at 64 senders, 10,000 notifications each, then 1,000/s for 10 s).
# HERALDSVC, HERALDBENCH and NATS_SERVER name the binaries (by default
# built from this module). Every run takes /tmp/bench.lock (flock), so
# that only one measurement at a time loads the machine, and prints the
# load average before it. Each run's full result is OUT_DIR/STORE-RUN.txt
# and .json.
set -eu
cd "$(dirname "$0")/../.."
out=${1:-$(mktemp -d)}
mkdir -p "$out/bin"
stores=${STORES:-sqlite jetstream cluster}
runs=${RUNS:-4:10000:1s 64:10000:1s 64:1000:10s}

if [ -z "${HERALDSVC:-}" ]; then
	go build -o "$out/bin/heraldsvc" ./cmd/heraldsvc
	HERALDSVC=$out/bin/heraldsvc
fi
if [ -z "${HERALDBENCH:-}" ]; then
	go build -o "$out/bin/heraldbench" ./cmd/heraldbench
	HERALDBENCH=$out/bin/heraldbench
fi
if [ -z "${NATS_SERVER:-}" ]; then
	go build -o "$out/bin/nats-server" github.com/nats-io/nats-server/v2
	NATS_SERVER=$out/bin/nats-server
fi
export HERALDSVC NATS_SERVER
# What heraldbench --heraldsvc gives the node it starts: quotas and rates
# off, so that the runs measure the service rather than its protections.
HERALDSVC_ARGS="--log-level warn --daily-quota -1 --channel-rate -1 --sender-rate -1 --max-in-flight 65536 --slow-store 1h --max-pending-hellos-per-source -1 --max-pending-hellos -1"
export HERALDSVC_ARGS

svc_pid=""
stop() {
	if [ -n "$svc_pid" ]; then
		kill "$svc_pid" 2>/dev/null || true
		wait "$svc_pid" 2>/dev/null || true
		svc_pid=""
	fi
}
trap 'stop' EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

# measure runs the load tool's runs, named $1, against the service at $2
# (devices), posting to $3, whose processes are $4 (comma-separated); or,
# if $2 is nats://…, the JetStream floor on that cluster, with the nkey
# seed $3.
measure() {
	name=$1 service=$2 postto=$3 pids=$4
	case $service in
	nats://*) set -- --jetstream-floor "$service" --nats-nkey "$postto" ;;
	*) set -- --service "$service" ${postto:+--post-to "$postto"} --hold 2s ;;
	esac
	for r in $runs; do
		senders=${r%%:*}
		rest=${r#*:}
		rate=${rest%%:*}
		duration=${rest#*:}
		tag="$name-s$senders-r$rate-$duration"
		flock /tmp/bench.lock sh -c '
			echo "load before: $(cut -d" " -f1-3 /proc/loadavg)"
			exec "$@"' sh "$HERALDBENCH" "$@" --cpu-pids "$pids" \
			--devices 1000 --rate "$rate" --duration "$duration" --senders "$senders" \
			--json "$out/$tag.json" >"$out/$tag.txt" 2>&1 || {
			cat "$out/$tag.txt" >&2
			# What the servers said (a port taken, a bad configuration).
			for log in "$out/$name.log" "$out/$name"/*.log; do
				if [ -f "$log" ]; then
					echo "== $log" >&2
					tail -n 5 "$log" >&2
				fi
			done
			exit 1
		}
		printf '%-36s %s\n' "$tag" "$(jq -r '"\(.cpu_per_delivered_us|floor) µs/notification, \(.achieved_rate|floor)/s, p50/p99 \(.latency_ms.p50*10|floor/10) / \(.latency_ms.p99*10|floor/10) ms, delivered/lost/dup \(.delivered)/\(.lost)/\(.duplicated)"' "$out/$tag.json") [$(sed -n 's/load before: //p' "$out/$tag.txt")] ($(sed -n 's/^cpu per delivered *//p' "$out/$tag.txt" | sed 's/^[0-9]* µs //'))"
	done
}

# ready waits for a node's /readyz.
ready() {
	tries=0
	until curl -fsS "$1/readyz" 2>/dev/null | grep -q '"ready":true'; do
		tries=$((tries + 1))
		if [ "$tries" -ge 240 ]; then
			echo "$1 not ready after 120 s" >&2
			exit 1
		fi
		sleep 0.5
	done
}

# started waits until run.sh (svc_pid) has written its pids file $1.
started() {
	tries=0
	until [ -s "$1" ]; do
		if ! kill -0 "$svc_pid" 2>/dev/null; then
			cat "$(dirname "$1").log" >&2
			exit 1
		fi
		tries=$((tries + 1))
		if [ "$tries" -ge 300 ]; then
			echo "$(dirname "$1") did not start in 150 s" >&2
			exit 1
		fi
		sleep 0.5
	done
}

# free fails if something answers at a URL the run is about to listen on
# (another cluster of run.sh): the figures would be its.
free() {
	for u in "$@"; do
		if curl -fsS -m 2 "$u/readyz" >/dev/null 2>&1; then
			echo "something already answers at $u: stop it first" >&2
			exit 1
		fi
	done
}

for store in $stores; do
	case $store in
	sqlite)
		free http://127.0.0.1:8780
		rm -rf "$out/sqlite"
		mkdir -p "$out/sqlite"
		# shellcheck disable=SC2086 # HERALDSVC_ARGS are words
		"$HERALDSVC" serve --listen 127.0.0.1:8780 --db "$out/sqlite/heraldsvc.db" $HERALDSVC_ARGS \
			>"$out/sqlite/heraldsvc.log" 2>&1 &
		svc_pid=$!
		ready http://127.0.0.1:8780
		measure sqlite http://127.0.0.1:8780 "" "$svc_pid"
		stop
		;;
	jetstream)
		rm -rf "$out/jetstream"
		examples/cluster/run.sh --nats-only "$out/jetstream" >"$out/jetstream.log" 2>&1 &
		svc_pid=$!
		started "$out/jetstream/pids"
		# heraldbench waits (up to 30 s) for JetStream's meta leader.
		measure jetstream nats://127.0.0.1:4221,nats://127.0.0.1:4222,nats://127.0.0.1:4223 \
			"$out/jetstream/node1.nk" "$(tr ' ' ',' <"$out/jetstream/pids")"
		stop
		;;
	cluster)
		free http://127.0.0.1:8791 http://127.0.0.1:8792 http://127.0.0.1:8793
		rm -rf "$out/cluster"
		examples/cluster/run.sh "$out/cluster" >"$out/cluster.log" 2>&1 &
		svc_pid=$!
		started "$out/cluster/pids"
		measure cluster http://127.0.0.1:8791 http://127.0.0.1:8792,http://127.0.0.1:8793 "$(tr ' ' ',' <"$out/cluster/pids")"
		stop
		;;
	*)
		echo "STORES: unknown store $store (sqlite, jetstream, cluster)" >&2
		exit 2
		;;
	esac
done
