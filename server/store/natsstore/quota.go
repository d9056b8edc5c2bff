package natsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

var _ store.Quota = (*Store)(nil)

// quotaKeep is how long a day's counts are kept: the bucket forgets an
// entry this long after its last count, and a day's key is never used
// again once the day is over.
const quotaKeep = 48 * time.Hour

// Take counts one notification with compare-and-set, so two nodes counting
// at once never both take the last one.
func (s *Store) Take(ctx context.Context, channelID string, day int64, limit int) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	key := strconv.FormatInt(day, 10) + "." + token(channelID)
	for {
		e, err := get(ctx, s.quota, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if limit <= 0 {
				return false, nil
			}
			_, err = s.quota.Create(ctx, key, []byte("1"))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return false, unavailable("quota", err)
			}
			return true, nil
		}
		if err != nil {
			return false, unavailable("quota", err)
		}
		n, err := strconv.Atoi(string(e.Value()))
		if err != nil {
			return false, fmt.Errorf("natsstore: quota %s: %w", key, err)
		}
		if n >= limit {
			return false, nil
		}
		_, err = s.quota.Update(ctx, key, []byte(strconv.Itoa(n+1)), e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return false, unavailable("quota", err)
		}
		return true, nil
	}
}
