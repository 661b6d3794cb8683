package agents

import (
	"context"
	"time"
)

// RunWith is Run driven by the test's tick channels.
func (s *Store) RunWith(ctx context.Context, refresh, flush <-chan time.Time) error {
	return s.run(ctx, refresh, flush)
}
