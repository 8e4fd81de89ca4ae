package imagewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// resumableBody is the image's HTTP body as one io.Reader that survives
// dropped connections: when the body ends early or fails, it asks again
// with "Range: bytes=<offset>-", offset being the bytes already delivered
// (compressed bytes for compressed images, so the decompressor is fed one
// seamless stream and never notices).
type resumableBody struct {
	ctx     context.Context
	client  *http.Client
	url     string
	retries int

	body      io.ReadCloser
	started   bool   // the first response arrived
	off       int64  // bytes delivered to the reader
	length    int64  // the resource's full length, -1 if unknown
	validator string // strong ETag or Last-Modified, sent as If-Range
	failures  int    // reconnects since the last byte received
	lastErr   error  // why the stream broke
}

// backoff is the wait before the n-th reconnect in a row (n ≥ 1).
func backoff(n int) time.Duration {
	return min(100*time.Millisecond<<(n-1), 5*time.Second)
}

// permanentError marks answers that retrying cannot change.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func newResumableBody(ctx context.Context, client *http.Client, url string, retries int) *resumableBody {
	return &resumableBody{ctx: ctx, client: client, url: url, retries: max(retries, 0), length: -1}
}

func (r *resumableBody) Read(p []byte) (int, error) {
	for {
		if r.body == nil {
			if err := r.connect(); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && (r.length < 0 || r.off == r.length):
			return n, io.EOF
		case err == io.EOF:
			r.lastErr = fmt.Errorf("connection closed at byte %d of %d", r.off, r.length)
		default:
			r.lastErr = err
		}
		r.body.Close()
		r.body = nil
		if cerr := context.Cause(r.ctx); cerr != nil {
			return n, cerr
		}
		if n > 0 {
			return n, nil // reconnect on the next call
		}
	}
}

func (r *resumableBody) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

// connect opens the first request, or resumes the broken one, retrying
// transient failures with backoff.
func (r *resumableBody) connect() error {
	retry := r.started || r.lastErr != nil
	for {
		if retry {
			if r.failures >= r.retries {
				if !r.started {
					return fmt.Errorf("GET %s: %w (gave up after %d retries)", r.url, r.lastErr, r.retries)
				}
				return fmt.Errorf("download of %s truncated at byte %d of %s and not resumed after %d retries: %w",
					r.url, r.off, r.lengthString(), r.retries, r.lastErr)
			}
			r.failures++
			t := time.NewTimer(backoff(r.failures))
			select {
			case <-r.ctx.Done():
				t.Stop()
				return context.Cause(r.ctx)
			case <-t.C:
			}
		}
		retry = true
		err := r.open()
		if err == nil {
			return nil
		}
		if cerr := context.Cause(r.ctx); cerr != nil {
			return cerr
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return err
		}
		r.lastErr = err
	}
}

func (r *resumableBody) lengthString() string {
	if r.length < 0 {
		return "unknown"
	}
	return strconv.FormatInt(r.length, 10)
}

func (r *resumableBody) open() error {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return &permanentError{err}
	}
	// Explicit identity: otherwise net/http asks for gzip on the first
	// request and transparently inflates it, and byte offsets for Range
	// would no longer be offsets in the resource.
	req.Header.Set("Accept-Encoding", "identity")
	if r.started {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", r.off))
		// If the image changed on the server, get 200 (and fail) rather
		// than the tail of a different image.
		if r.validator != "" {
			req.Header.Set("If-Range", r.validator)
		}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	status := fmt.Sprintf("GET %s: HTTP %s", r.url, resp.Status)
	switch {
	case !r.started && resp.StatusCode == http.StatusOK:
		r.started = true
		r.length = resp.ContentLength
		if etag := resp.Header.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
			r.validator = etag
		} else {
			r.validator = resp.Header.Get("Last-Modified")
		}
	case r.started && resp.StatusCode == http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case err != nil:
			err = fmt.Errorf("%s: %w", status, err)
		case start != r.off:
			err = fmt.Errorf("%s: asked to resume at byte %d, server sent from byte %d", status, r.off, start)
		case r.length >= 0 && total >= 0 && total != r.length:
			err = fmt.Errorf("%s: image changed size from %d to %d bytes while downloading", status, r.length, total)
		}
		if err != nil {
			resp.Body.Close()
			return &permanentError{err}
		}
	case r.started && resp.StatusCode == http.StatusOK:
		resp.Body.Close()
		return &permanentError{fmt.Errorf("%w: the connection dropped at byte %d (%v) and the Range request got %s instead of 206 Partial Content",
			ErrRangeNotSupported, r.off, r.lastErr, status)}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		resp.Body.Close()
		return errors.New(status)
	default:
		resp.Body.Close()
		return &permanentError{errors.New(status)}
	}
	r.body = resp.Body
	return nil
}

// parseContentRange parses "bytes <start>-<end>/<total|*>"; total is -1
// for "*".
func parseContentRange(s string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	rng, size, ok2 := strings.Cut(rest, "/")
	first, _, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	if size == "*" {
		return start, -1, nil
	}
	if total, err = strconv.ParseInt(size, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	return start, total, nil
}
