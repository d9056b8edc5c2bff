package natsstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

var _ store.Quota = (*Store)(nil)

// quotaKeep is how long a day's counts are kept; a day's subject is never
// counted on again once the day is over.
const quotaKeep = 48 * time.Hour

// The daily quota is a JetStream counter per channel and day: subject
// <prefix>.quota.<day>.<channel> on a stream that allows counters. One
// publish adds one and answers the new total, so counting costs one
// replicated write, and two nodes counting at once get different totals:
// only those within the limit pass.
func (s *Store) setUpQuota(ctx context.Context, opts Options) error {
	st, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     strings.ToUpper(opts.Prefix) + "_QUOTA",
		Subjects: []string{opts.Prefix + ".quota.>"},
		Storage:  jetstream.FileStorage, Replicas: opts.Replicas,
		AllowMsgCounter: true, AllowDirect: true, MaxAge: quotaKeep,
	})
	if err != nil {
		return fmt.Errorf("natsstore: quota stream: %w", err)
	}
	s.quotaSubject = st.CachedInfo().Config.Subjects[0]
	s.quotaSubject = strings.TrimSuffix(s.quotaSubject, ">")
	return nil
}

// Take adds one to the channel's count for the day and reports whether the
// new total is within limit.
func (s *Store) Take(ctx context.Context, channelID string, day int64, limit int) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	if limit <= 0 {
		return false, nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	m := nats.NewMsg(s.quotaSubject + strconv.FormatInt(day, 10) + "." + token(channelID))
	m.Header.Set("Nats-Incr", "1")
	// Sent again under the same id if its answer is lost, and counted once.
	id := newID()
	var ack *jetstream.PubAck
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		ack, err = s.js.PublishMsg(ctx, m, jetstream.WithMsgID(id))
		return err
	})
	if err != nil {
		return false, unavailable("quota", err)
	}
	n, err := strconv.ParseInt(ack.Value, 10, 64)
	if err != nil {
		return false, fmt.Errorf("natsstore: quota count %q: %w", ack.Value, err)
	}
	return n <= int64(limit), nil
}
