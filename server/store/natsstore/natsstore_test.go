package natsstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
	"github.com/heraldpush/herald/server/store/storetest"
)

// Each subtest has its own buckets and stream on the shared servers.
func contract(t *testing.T, urls string, replicas int) {
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: urls, Replicas: replicas,
			QueueDepth: storetest.Depth, Prefix: fmt.Sprintf("t%d", n.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestContractSingleServer(t *testing.T) {
	contract(t, natstest.Run(t).URL(), 1)
}

func TestContractClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	contract(t, natstest.RunCluster(t, 3).URLs(), 3)
}
