package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store/natsstore"
)

// The JetStream floor is what a replicated JetStream alone spends on the
// fewest operations any Herald design on it needs for one notification:
// a replicated publish whose PubAck the sender waits for (the sender's
// durable answer), one delivery to one consumer (the node holding the
// device), and one replicated removal (the device's ack), each done as
// natsstore does it. No heraldsvc runs: with --cpu-pids naming the NATS
// servers, its CPU per notification is what the NATS share of the
// cluster's cannot go below while a notification is one replicated
// message (docs/cluster.md, "The JetStream floor").

// JetStreamFloor says which cluster to measure the floor on.
type JetStreamFloor struct {
	// URLs are the cluster's nats:// URLs, comma-separated.
	URLs string
	// Options are for the connection (credentials).
	Options []nats.Option
	// Replicas is the stream's replication; 0 means 3, natsstore's
	// in a cluster.
	Replicas int
	// Ready bounds how long connecting and creating the stream are
	// retried: a cluster just started has no meta leader yet (default
	// 30 s).
	Ready time.Duration
}

const (
	jsFloorStream = "HERALD_FLOOR"
	jsFloorPrefix = "herald_floor.q."
	// jsFloorDepth is natsstore's default queue depth.
	jsFloorDepth = 32
	// jsFloorRemovers purge in parallel, so that removals do not queue
	// behind the consumer's one goroutine.
	jsFloorRemovers = 8
)

// jsFloorStreamConfig is natsstore's queue stream, under the floor's
// own name and subjects.
func jsFloorStreamConfig(replicas int) jetstream.StreamConfig {
	return natsstore.QueueStreamConfig(jsFloorStream, jsFloorPrefix, replicas, jsFloorDepth)
}

// RunJetStreamFloor publishes Rate × Duration messages over cfg.Devices
// subjects from cfg.Senders goroutines, receives each on one ordered
// consumer and removes it, and reports the counts, the publish→delivery
// latency and cfg.CPUPIDs' CPU per message delivered. The stream is
// (re)created first and deleted at the end.
func RunJetStreamFloor(ctx context.Context, cfg Config, fl JetStreamFloor) (*Result, error) {
	if cfg.Devices <= 0 || cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("bench: jetstream floor: devices, rate and duration must be positive")
	}
	for _, u := range strings.Split(fl.URLs, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || pu.Scheme != "nats" {
			return nil, fmt.Errorf("bench: jetstream floor: NATS URL %q must be nats://host:port", u)
		}
		if !loopbackHost(pu.Hostname()) {
			return nil, fmt.Errorf("%w: NATS URL %q", ErrNotLoopback, u)
		}
	}
	if fl.Replicas <= 0 {
		fl.Replicas = 3
	}
	if fl.Ready <= 0 {
		fl.Ready = 30 * time.Second
	}
	cfg.defaults()
	nc, js, stream, err := jsFloorSetup(ctx, fl)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(dctx, jsFloorStream); err != nil {
			cfg.Logger.Warn("bench: deleting the floor's stream", "err", err)
		}
	}()
	total := int(cfg.Rate * cfg.Duration.Seconds())
	col := &collector{seen: make([]atomic.Uint32, total), lat: make([]time.Duration, 0, total)}
	res := &Result{Devices: cfg.Devices, Rate: cfg.Rate, JetStreamFloor: true,
		ServiceNote: fmt.Sprintf("the JetStream floor: stream %s R%d, publish + one delivery + one purge a message", jsFloorStream, fl.Replicas)}

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	var removed, removeErrs atomic.Int64
	// Room for every message (up to a million), so that the consumer
	// never waits for the removers: publish→delivery is the delivery's
	// latency, not the purges' backlog.
	removals := make(chan jsFloorRemoval, min(total, 1<<20))
	for range jsFloorRemovers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jsFloorRemove(rctx, stream, removals, &removed, &removeErrs)
		}()
	}
	cons, err := js.OrderedConsumer(ctx, jsFloorStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{jsFloorPrefix + "*"}})
	if err != nil {
		return nil, fmt.Errorf("bench: jetstream floor: consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		md, err := m.Metadata()
		if err != nil {
			return
		}
		line, _, _ := bytes.Cut(m.Data(), []byte{'\n'})
		col.record(line, now)
		select {
		case removals <- jsFloorRemoval{m.Subject(), md.Sequence.Stream}:
		case <-rctx.Done():
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bench: jetstream floor: consume: %w", err)
	}
	defer func() {
		cc.Stop()
		<-cc.Closed()
	}()

	cpuBefore := sampleCPU(cfg.CPUPIDs)
	jsFloorSend(ctx, cfg, js, total, res)
	// Wait until what was published has arrived and been removed, up to
	// Drain.
	deadline := time.Now().Add(cfg.Drain)
	for (col.delivered.Load() < res.Accepted || removed.Load()+removeErrs.Load() < col.delivered.Load()) && time.Now().Before(deadline) {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if res.CPU, err = settledCPU(ctx, cfg, cpuBefore); err != nil {
		return nil, err
	}
	res.Removed = removed.Load()
	if n := removeErrs.Load(); n > 0 {
		cfg.Logger.Warn("bench: jetstream floor: purges failed", "n", n)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: jetstream floor: stream info: %w", err)
	}
	res.LeftInStream = info.State.Msgs
	summarise(col, res)
	return res, nil
}

// jsFloorSetup connects and (re)creates the stream, retrying both with
// backoff for up to fl.Ready while the cluster elects its meta leader.
func jsFloorSetup(ctx context.Context, fl JetStreamFloor) (*nats.Conn, jetstream.JetStream, jetstream.Stream, error) {
	deadline := time.Now().Add(fl.Ready)
	backoff := 50 * time.Millisecond
	for {
		nc, js, stream, err := jsFloorCreate(ctx, fl)
		if err == nil {
			return nc, js, stream, nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return nil, nil, nil, fmt.Errorf("bench: jetstream floor: not ready after %v: %w", fl.Ready, err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// jsFloorCreate connects and makes the stream, once.
func jsFloorCreate(ctx context.Context, fl JetStreamFloor) (*nats.Conn, jetstream.JetStream, jetstream.Stream, error) {
	nc, err := nats.Connect(fl.URLs, fl.Options...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect: %w", err)
	}
	js, stream, err := jsFloorStreamOn(ctx, nc, fl.Replicas)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return nc, js, stream, nil
}

// jsFloorStreamOn makes the floor's stream afresh: one left by an
// interrupted run would hold its messages.
func jsFloorStreamOn(ctx context.Context, nc *nats.Conn, replicas int) (jetstream.JetStream, jetstream.Stream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, jsFloorStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil, fmt.Errorf("deleting the stream: %w", err)
	}
	stream, err := js.CreateStream(ctx, jsFloorStreamConfig(replicas))
	if err != nil {
		return nil, nil, fmt.Errorf("creating the stream: %w", err)
	}
	return js, stream, nil
}

// jsFloorRemoval is a message received, to remove.
type jsFloorRemoval struct {
	subject string
	seq     uint64
}

// jsFloorRemove purges each message received on todo as natsstore's ack
// does (queue.go, purge): its subject, below the sequence after it. One
// purge a message, none coalesced.
func jsFloorRemove(ctx context.Context, stream jetstream.Stream, todo <-chan jsFloorRemoval, removed, failed *atomic.Int64) {
	for {
		select {
		case r := <-todo:
			err := stream.Purge(ctx, jetstream.WithPurgeSubject(r.subject), jetstream.WithPurgeSequence(r.seq+1))
			if err != nil {
				failed.Add(1)
				continue
			}
			removed.Add(1)
		case <-ctx.Done():
			return
		}
	}
}

// jsFloorSend publishes total messages, paced like send, each waiting
// for its PubAck; the stream refusing one for its subject's limit is a
// refusal, any other error a failure. Unlike natsstore's, the publishes
// carry no message id: deduplication would only add to the floor.
func jsFloorSend(ctx context.Context, cfg Config, js jetstream.JetStream, total int, res *Result) {
	pad := strings.Repeat("x", 100)
	sendAll(ctx, cfg, total, res, func(id int) outcome {
		var apiErr *jetstream.APIError
		switch _, err := js.PublishMsg(ctx, jsFloorMsg(id%cfg.Devices, id, pad)); {
		case err == nil:
			return accepted
		case errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum messages per subject"):
			return refused
		default:
			return failed
		}
	})
}

// jsFloorMsg is message id for device: about the size natsstore's
// message() makes of a notification: three headers and a body of about
// 125 bytes, whose first line is what collector.record reads.
func jsFloorMsg(device, id int, pad string) *nats.Msg {
	dev := fmt.Sprintf("floor-device-%023d", device)
	m := nats.NewMsg(jsFloorPrefix + dev)
	m.Header.Set("Herald-Device", dev)
	m.Header.Set("Herald-Channel", "floor-channel-"+dev[13:])
	m.Header.Set("Herald-Accepted", strconv.FormatInt(time.Now().UnixMilli(), 10))
	m.Data = []byte(strconv.Itoa(id) + " " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n" + pad)
	return m
}
