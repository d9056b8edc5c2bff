//go:build unix

package platform

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// Run under the service manager (kardianos' Run, which is what the OS
// starts): SIGTERM cancels ctx, and a run that fails on its own ends Run
// without waiting for a signal.
func TestServiceManagedRun(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		run  func(ctx context.Context) error
		want error
	}{
		{
			name: "SIGTERM stops",
			run: func(ctx context.Context) error {
				if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(10 * time.Second):
					return errors.New("ctx not cancelled after SIGTERM")
				}
			},
		},
		{
			name: "failure ends Run",
			run:  func(context.Context) error { return boom },
			want: boom,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewService(ServiceOptions{Name: "herald-test-unused"}, tt.run)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				err := s.svc.Run()
				s.mu.Lock()
				errc <- errors.Join(s.runErr, err)
				s.mu.Unlock()
			}()
			select {
			case err := <-errc:
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Errorf("Run = %v, want %v", err, tt.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return")
			}
		})
	}
}

func TestServiceRunInteractive(t *testing.T) {
	if !Interactive() {
		t.Skip("not interactive: Run would wait for the service manager")
	}
	boom := errors.New("boom")
	s, err := NewService(ServiceOptions{Name: "herald-test-unused"}, func(ctx context.Context) error { return boom })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(); !errors.Is(err, boom) {
		t.Errorf("Run = %v, want %v", err, boom)
	}
	s, err = NewService(ServiceOptions{Name: "herald-test-unused"}, func(ctx context.Context) error {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(); err != nil {
		t.Errorf("Run after SIGINT = %v, want nil", err)
	}
}
