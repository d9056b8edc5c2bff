#!/bin/sh
# A Herald cluster on one machine: three NATS servers with JetStream (one
# cluster, every bucket and the stream kept three times) and three heraldsvc
# nodes sharing them, all started at once. Ctrl-C stops the nodes, then the
# NATS servers. See docs/cluster.md.
#
#   examples/cluster/run.sh [DATA_DIR]
#   examples/cluster/run.sh --config-only DATA_DIR   # write keys and configs, start nothing
#   examples/cluster/run.sh --nats-only DATA_DIR     # the three NATS servers alone
#
# NATS is the service's database: whoever reads its buckets has every
# device's key. So nothing here is open: each node has its own NATS user
# (an nkey, its seed in DATA_DIR/nodeN.nk), in an account whose permissions
# allow only Herald's subjects, buckets and stream; the servers' routes
# need a password; the keys and configs are readable by their owner only.
#
# NATS_SERVER, HERALDSVC and NK name the binaries to run; by default all
# three are built from this module (at the versions go.mod pins).
# HERALDSVC_ARGS are further flags for every node (e.g. quotas off, as
# examples/cluster/bench.sh gives them). Once every node is ready, the
# process ids are in DATA_DIR/pids: the NATS servers', then the nodes'.
#
# --nats-only starts the NATS servers and no node, for
# `heraldbench --jetstream-floor` (examples/cluster/bench.sh): the nodes'
# users may then also use the floor's stream, HERALD_FLOOR (and delete
# it), and its subjects. DATA_DIR/pids has the servers' process ids as
# soon as they are started; JetStream is ready some seconds later, once
# it has a meta leader.
set -eu
cd "$(dirname "$0")/../.."

mode=all
case "${1:-}" in
--config-only | --nats-only)
	mode=${1#--}
	shift
	[ $# -eq 1 ] || { echo "usage: $0 --$mode DATA_DIR" >&2; exit 2; }
	;;
esac
data=${1:-$(mktemp -d)}
umask 077
mkdir -p "$data/bin"

if [ -z "${NK:-}" ]; then
	go build -o "$data/bin/nk" github.com/nats-io/nkeys/nk
	NK=$data/bin/nk
fi

# One nkey per node, made once and kept with the data.
for i in 1 2 3; do
	if [ ! -s "$data/node$i.nk" ]; then
		"$NK" -gen user -pubout >"$data/node$i.keys"
		sed -n 1p "$data/node$i.keys" >"$data/node$i.nk"
		sed -n 2p "$data/node$i.keys" >"$data/node$i.pub"
		rm "$data/node$i.keys"
	fi
done
if [ ! -s "$data/route.password" ]; then
	od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$data/route.password"
fi
route_pw=$(cat "$data/route.password")

# What a node may do, and nothing more: the JetStream API for its own
# buckets and stream only (create, bind, read, purge; never delete one),
# publishing to them, the takeover subjects, and replies in its inbox.
prefix=herald
streams="KV_${prefix}_devices KV_${prefix}_channels KV_${prefix}_quota KV_${prefix}_outcomes KV_${prefix}_presence KV_${prefix}_nodes $(echo "$prefix" | tr a-z A-Z)_QUEUE"
if [ "$mode" = nats-only ]; then
	streams="$streams HERALD_FLOOR"
fi
permissions() {
	printf '  publish: { allow: [\n    "$JS.API.INFO"\n'
	if [ "$mode" = nats-only ]; then
		printf '    "$JS.API.STREAM.DELETE.HERALD_FLOOR"\n    "herald_floor.q.*"\n'
	fi
	for s in $streams; do
		for api in STREAM.CREATE STREAM.UPDATE STREAM.INFO STREAM.PURGE STREAM.MSG.GET STREAM.MSG.DELETE DIRECT.GET CONSUMER.CREATE; do
			printf '    "$JS.API.%s.%s"\n' "$api" "$s"
		done
		for api in DIRECT.GET CONSUMER.CREATE CONSUMER.DELETE CONSUMER.INFO CONSUMER.MSG.NEXT; do
			printf '    "$JS.API.%s.%s.>"\n' "$api" "$s"
		done
		printf '    "$JS.FC.%s.>"\n    "$JS.ACK.%s.>"\n' "$s" "$s"
	done
	for b in devices channels quota outcomes presence nodes; do
		printf '    "$KV.%s_%s.>"\n' "$prefix" "$b"
	done
	printf '    "%s.q.*"\n    "%s.takeover.*"\n  ] }\n' "$prefix" "$prefix"
	printf '  subscribe: { allow: [ "_INBOX.>", "%s.takeover.*" ] }\n' "$prefix"
}

routes=""
for i in 1 2 3; do
	routes="$routes\"nats-route://route:$route_pw@127.0.0.1:622$i\", "
done
for i in 1 2 3; do
	mkdir -p "$data/nats$i"
	{
		echo "server_name: n$i"
		echo "listen: 127.0.0.1:422$i"
		echo "jetstream { store_dir: \"$data/nats$i\" }"
		# On one machine the routes stay on loopback; between machines
		# they need TLS too (docs/cluster.md).
		echo "cluster {"
		echo "  name: herald"
		echo "  listen: 127.0.0.1:622$i"
		echo "  authorization { user: route, password: \"$route_pw\" }"
		echo "  routes: [ $routes]"
		echo "}"
		echo "herald_node = {"
		permissions
		echo "}"
		echo "accounts {"
		echo "  HERALD {"
		echo "    jetstream: enabled"
		echo "    users: ["
		for n in 1 2 3; do
			echo "      { nkey: $(cat "$data/node$n.pub"), permissions: \$herald_node }"
		done
		echo "    ]"
		echo "  }"
		echo "}"
	} >"$data/nats$i.conf"
done
if [ "$mode" = config-only ]; then
	exit 0
fi

if [ -z "${NATS_SERVER:-}" ]; then
	go build -o "$data/bin/nats-server" github.com/nats-io/nats-server/v2
	NATS_SERVER=$data/bin/nats-server
fi
if [ -z "${HERALDSVC:-}" ] && [ "$mode" = all ]; then
	go build -o "$data/bin/heraldsvc" ./cmd/heraldsvc
	HERALDSVC=$data/bin/heraldsvc
fi

# Each process in a process group of its own (job control), so that
# Ctrl-C reaches only this script, which stops them in order; otherwise
# the terminal would interrupt the NATS servers as soon as the nodes.
# (Without a terminal there is no Ctrl-C, and no job control either.)
set -m 2>/dev/null || true
nats_pids=""
node_pids=""
# The nodes first, so that none is left asking for a NATS that is gone.
stop() {
	trap - INT TERM EXIT
	if [ -n "$node_pids" ]; then
		kill $node_pids 2>/dev/null || true
		wait $node_pids 2>/dev/null || true
	fi
	if [ -n "$nats_pids" ]; then
		kill $nats_pids 2>/dev/null || true
		wait $nats_pids 2>/dev/null || true
	fi
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop' EXIT

for i in 1 2 3; do
	"$NATS_SERVER" -c "$data/nats$i.conf" >"$data/nats$i.log" 2>&1 &
	nats_pids="$nats_pids $!"
	eval "nats_pid_$i=$!"
done

# nats_died reports a NATS server whose process has exited, with its
# log's last line, which names the cause (a port taken, say). Once the
# nodes are ready the cluster outlives one server's death, and so does
# this script.
nats_died() {
	for n in 1 2 3; do
		eval "pid=\$nats_pid_$n"
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "NATS server $n exited: $(tail -n 1 "$data/nats$n.log")" >&2
			echo "  (log $data/nats$n.log)" >&2
			return 0
		fi
	done
	return 1
}
store=nats://127.0.0.1:4221,nats://127.0.0.1:4222,nats://127.0.0.1:4223

if [ "$mode" = nats-only ]; then
	echo $nats_pids >"$data/pids"
	echo "NATS: $store (users' seeds $data/node1.nk, …)"
	# Until stopped, or until a server exits.
	until nats_died; do
		sleep 1
	done
	exit 1
fi

# All nodes at once, as a machine's boot starts them: each waits for
# JetStream by itself, and says on /readyz when it is ready.
for i in 1 2 3; do
	# shellcheck disable=SC2086 # HERALDSVC_ARGS are words
	"$HERALDSVC" serve --listen "127.0.0.1:879$i" --store "$store" --nats-nkey "$data/node$i.nk" ${HERALDSVC_ARGS:-} \
		>"$data/heraldsvc$i.log" 2>&1 &
	node_pids="$node_pids $!"
	eval "node_pid_$i=$!"
done

# died reports a node whose process has exited, with its log's last line.
died() {
	eval "pid=\$node_pid_$1"
	if kill -0 "$pid" 2>/dev/null; then
		return 1
	fi
	echo "heraldsvc node $1 exited: $(tail -n 1 "$data/heraldsvc$1.log")" >&2
	echo "  (log $data/heraldsvc$1.log)" >&2
	return 0
}

for i in 1 2 3; do
	url=http://127.0.0.1:879$i
	tries=0
	# Ready means this node answered, as heraldsvc, that its store is
	# usable: not merely that something holds the port.
	until curl -fsS "$url/readyz" 2>/dev/null | grep -q '"service":"heraldsvc","ready":true'; do
		if died "$i" || nats_died; then exit 1; fi
		tries=$((tries + 1))
		if [ "$tries" -ge 240 ]; then
			echo "heraldsvc node $i not ready after 120 s: $(curl -sS "$url/readyz" 2>&1)" >&2
			echo "  (log $data/heraldsvc$i.log)" >&2
			exit 1
		fi
		sleep 0.5
	done
	echo "heraldsvc node $i: $url (log $data/heraldsvc$i.log)"
done
echo $nats_pids $node_pids >"$data/pids"
echo "devices: herald run --service http://127.0.0.1:8791,http://127.0.0.1:8792,http://127.0.0.1:8793"

while :; do
	for i in 1 2 3; do
		if died "$i"; then exit 1; fi
	done
	sleep 1
done
