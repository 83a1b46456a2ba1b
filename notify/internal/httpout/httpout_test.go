package httpout

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/breachkit/breach/incident"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"120", 2 * time.Minute}, {" 5 ", 5 * time.Second}, {"0", 0}, {"-3", 0}, {"soon", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		assert.Equal(t, tt.want, RetryAfter(tt.v, now), "%q", tt.v)
	}
}

func TestClassify(t *testing.T) {
	base := errors.New("answer")
	for _, tt := range []struct {
		code      int
		after     time.Duration
		permanent bool
		delay     time.Duration
	}{
		{429, time.Minute, false, time.Minute}, {503, time.Second, false, time.Second}, {429, 0, false, 0},
		{408, 0, false, 0}, {500, 0, false, 0}, {502, time.Minute, false, 0},
		{400, 0, true, 0}, {404, 0, true, 0}, {301, 0, true, 0},
	} {
		err := Classify(base, tt.code, tt.after)
		assert.ErrorIs(t, err, base)
		assert.Equal(t, tt.permanent, incident.IsPermanent(err), "%d", tt.code)
		d, _ := incident.RetryDelay(err)
		assert.Equal(t, tt.delay, d, "%d", tt.code)
	}
}
