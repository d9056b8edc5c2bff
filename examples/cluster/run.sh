#!/bin/sh
# A Herald cluster on one machine: three NATS servers with JetStream (one
# cluster, every bucket and the stream kept three times) and three heraldsvc
# nodes sharing them. Ctrl-C stops everything. See docs/cluster.md.
#
#   examples/cluster/run.sh [DATA_DIR]
#
# NATS_SERVER and HERALDSVC name the binaries to run; by default both are
# built from this module (nats-server at the version go.mod pins).
set -eu
cd "$(dirname "$0")/../.."
data=${1:-$(mktemp -d)}
mkdir -p "$data/bin"
if [ -z "${NATS_SERVER:-}" ]; then
	go build -o "$data/bin/nats-server" github.com/nats-io/nats-server/v2
	NATS_SERVER=$data/bin/nats-server
fi
if [ -z "${HERALDSVC:-}" ]; then
	go build -o "$data/bin/heraldsvc" ./cmd/heraldsvc
	HERALDSVC=$data/bin/heraldsvc
fi

pids=""
trap 'kill $pids 2>/dev/null; wait' INT TERM EXIT

routes=nats://127.0.0.1:6221,nats://127.0.0.1:6222,nats://127.0.0.1:6223
for i in 1 2 3; do
	mkdir -p "$data/nats$i"
	"$NATS_SERVER" --name "n$i" --addr 127.0.0.1 --port "422$i" --jetstream --store_dir "$data/nats$i" \
		--cluster_name herald --cluster "nats://127.0.0.1:622$i" --routes "$routes" \
		>"$data/nats$i.log" 2>&1 &
	pids="$pids $!"
done
store=nats://127.0.0.1:4221,nats://127.0.0.1:4222,nats://127.0.0.1:4223

# A node fails to start until the NATS servers have elected a JetStream
# leader (a few seconds after they start); it is started again until it
# answers on its port.
for i in 1 2 3; do
	url=http://127.0.0.1:879$i
	tries=0
	"$HERALDSVC" serve --listen "127.0.0.1:879$i" --store "$store" >"$data/heraldsvc$i.log" 2>&1 &
	pid=$!
	until curl -fs "$url/" >/dev/null 2>&1; do
		tries=$((tries + 1))
		if [ "$tries" -ge 120 ]; then echo "heraldsvc node $i does not start; see $data/heraldsvc$i.log" >&2; exit 1; fi
		if ! kill -0 "$pid" 2>/dev/null; then
			"$HERALDSVC" serve --listen "127.0.0.1:879$i" --store "$store" >"$data/heraldsvc$i.log" 2>&1 &
			pid=$!
		fi
		sleep 0.5
	done
	pids="$pids $pid"
	echo "heraldsvc node $i: $url (log $data/heraldsvc$i.log)"
done
echo "devices: herald run --service http://127.0.0.1:8791,http://127.0.0.1:8792,http://127.0.0.1:8793"
wait
