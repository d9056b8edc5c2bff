package sqlitestore

import (
	"context"
	"fmt"
)

// QueueLength returns how many notifications the service holds that devices
// have not acknowledged yet, across every device. It is one count over the
// queue on the read pool, made when an operator's scraper asks, not kept
// on the hot path.
func (s *Store) QueueLength(ctx context.Context) (int64, error) {
	var n int64
	if err := s.rd.QueryRowContext(ctx, `SELECT COUNT(*) FROM queue`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: queue length: %w", err)
	}
	return n, nil
}
