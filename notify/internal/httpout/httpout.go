// Package httpout holds what the HTTP channels of notify (webhook,
// pagerduty, slack) share: their default client, how they read
// Retry-After, and how an answer's status becomes a retryable or
// permanent error.
package httpout

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/breachkit/breach/incident"
)

// Client returns the channels' default client: a 10s timeout per request,
// and no redirect followed (a redirect is answered as it is, so that a
// payload and its secret never go to another host).
func Client() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// RetryAfter reads a Retry-After header's value, seconds or an HTTP date
// after now, as a wait of at most a day; 0 when absent, past or unreadable.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Classify returns err, the error of an answer with status code, as the
// retry layer is to treat it: 429 and 503 with a Retry-After wait marked
// with incident.RetryAfter, 408, 429 and 5xx retryable as they are, every
// other status permanent.
func Classify(err error, code int, retryAfter time.Duration) error {
	switch {
	case (code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable) && retryAfter > 0:
		return incident.RetryAfter(err, retryAfter)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return err
	default:
		return incident.Permanent(err)
	}
}

// Deliver calls post unless ctx has ended, and names the channel's package
// (pkg) and ctx's cause in the error: "pkg: not sent: cause" when nothing
// was sent, "pkg: cause: err" when ctx ended during the call.
func Deliver(ctx context.Context, pkg string, post func(context.Context) error) error {
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("%s: not sent: %w", pkg, cause)
	}
	err := post(ctx)
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("%s: %w: %w", pkg, cause, err)
	}
	return fmt.Errorf("%s: %w", pkg, err)
}
