package main

import "errors"

// errNoSQLite answers --db (or no --store) in a heraldsvc built without
// cgo.
var errNoSQLite = errors.New("this heraldsvc was built without cgo, so it has no SQLite store: --db needs a cgo build (CGO_ENABLED=1 and a C compiler); give --store nats://HOST:4222 to keep the store on NATS JetStream")
