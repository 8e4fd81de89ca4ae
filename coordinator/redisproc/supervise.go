package redisproc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Supervise keeps a server running until ctx is done: if the child dies
// unexpectedly it logs the exit (with the tail of redis.log) and restarts it
// with the same Config, backing off from 100 ms, doubling up to 5 s. The
// socket path never changes, so clients that reconnect on their own (go-redis
// does) keep working across restarts.
//
// It returns the first server started; after a restart that Server only
// reports the old child (Pid, Exited, Err), while URL and SocketPath stay
// valid. Stop everything with the returned stop func, which ends supervision
// and stops the current child; it is safe to call more than once.
//
// Cancelling ctx ends supervision (no more restarts) but deliberately does
// not stop the child: a coordinator typically cancels its context on Ctrl-C
// and still needs Redis while it drains, and calls stop afterwards. Calling
// Stop on a supervised Server directly also ends supervision instead of
// triggering a restart.
func Supervise(ctx context.Context, cfg Config) (srv *Server, stop func() error, err error) {
	first, err := Start(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("supervise redis-server: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// Pin the resolved absolute Dir so restarts use the same socket even if
	// the working directory changes.
	cfg.Dir = first.dir
	loopCtx, cancel := context.WithCancel(ctx)
	sv := &supervisor{
		cfg:    cfg,
		logger: logger,
		cur:    first,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go sv.loop(loopCtx)
	return first, sv.stop, nil
}

type supervisor struct {
	cfg    Config
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{} // closed when loop returns

	mu  sync.Mutex
	cur *Server // the most recently started child

	stopOnce sync.Once
	stopErr  error
}

// current returns the most recently started child.
func (sv *supervisor) current() *Server {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.cur
}

func (sv *supervisor) loop(ctx context.Context) {
	defer close(sv.done)
	backoff := minBackoff
	for {
		srv := sv.current()
		select {
		case <-ctx.Done():
			return
		case <-srv.Exited():
		}
		// An exit racing with stop or a cancelled ctx, or one asked for via
		// Server.Stop, is not a crash.
		if ctx.Err() != nil || srv.stopping.Load() {
			return
		}
		uptime := time.Since(srv.started)
		if uptime >= backoffReset {
			backoff = minBackoff
		}
		sv.logger.Error("redis-server exited unexpectedly; restarting",
			"pid", srv.Pid(), "err", srv.Err(), "uptime", uptime.Round(time.Millisecond),
			"restart_in", backoff, "socket", srv.SocketPath(), "log_tail", readTail(srv.logPath))

		for {
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			next, err := Start(ctx, sv.cfg)
			if err == nil {
				sv.mu.Lock()
				sv.cur = next
				sv.mu.Unlock()
				sv.logger.Info("redis-server restarted", "old_pid", srv.Pid(), "pid", next.Pid())
				break
			}
			if ctx.Err() != nil {
				return
			}
			sv.logger.Error("redis-server restart failed", "err", err, "retry_in", backoff)
		}
	}
}

// stop ends supervision first, so no restart can race with the shutdown,
// then stops whichever child is current.
func (sv *supervisor) stop() error {
	sv.stopOnce.Do(func() {
		sv.cancel()
		<-sv.done
		sv.stopErr = sv.current().Stop()
	})
	return sv.stopErr
}

// sleepCtx waits for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
