package emulator_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/emulator"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// BenchmarkThousandPhones connects 1,000 phones to an in-process service,
// as `herald emulate --devices 1000` does, and reports the process's
// resident memory once they are all up:
//
//	go test -run '^$' -bench ThousandPhones -benchtime 1x ./emulator
func BenchmarkThousandPhones(b *testing.B) {
	const n = 1000
	for range b.N {
		svc := testenv.Service(b, "", server.ServeConfig{})
		emu, err := emulator.New(context.Background(), emulator.Config{Devices: n, Service: svc.URL(),
			DB: filepath.Join(b.TempDir(), "emulator.db"), Logger: testenv.Logger(b)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- emu.Run(ctx) }()
		testenv.Eventually(b, 5*time.Minute, "all phones connected", func() bool { return emu.Connected() == n })
		b.ReportMetric(time.Since(start).Seconds(), "s-to-connect")
		runtime.GC()
		b.ReportMetric(float64(rssKB(b))/1024, "MiB-RSS")
		b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/phone")
		cancel()
		<-done
		emu.Close()
	}
}

func rssKB(b *testing.B) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	return 0
}
