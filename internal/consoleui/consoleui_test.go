package consoleui

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	ui, err := Load()
	require.NoError(t, err)
	for _, name := range Pages {
		assert.NotNil(t, ui.Pages[name].Lookup("layout"), name)
		assert.NotNil(t, ui.Pages[name].Lookup("content"), name)
	}
	assert.Contains(t, string(ui.CSS), "body {")
}

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{1400 * time.Millisecond, "1s"},
		{59 * time.Second, "59s"},
		{4*time.Minute + 10*time.Second, "4m 10s"},
		{5 * time.Minute, "5m"},
		{3*time.Hour + 20*time.Minute + 5*time.Second, "3h 20m"},
		{71 * time.Hour, "2d 23h"},
		{48 * time.Hour, "2d"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Duration(tt.d), tt.d.String())
	}
}

func TestPathSegment(t *testing.T) {
	assert.Equal(t, "inc_1", PathSegment("inc_1"))
	assert.Equal(t, "javascript%3Aalert%281%29", PathSegment("javascript:alert(1)"))
	assert.Equal(t, "a%2Fb%3Fc%23d", PathSegment("a/b?c#d"))
}

func TestTime(t *testing.T) {
	assert.Equal(t, "—", Time(time.Time{}))
	assert.Equal(t, "2026-03-02 10:00:00 UTC", Time(time.Date(2026, 3, 2, 11, 0, 0, 0, time.FixedZone("CET", 3600))))
}

func TestAttachment(t *testing.T) {
	assert.Equal(t, `attachment; filename="inc_0a1b.md"`, Attachment("inc_0a1b.md"))
	assert.Equal(t, `attachment; filename*=utf-8''inc%20%C3%A9%3B%22x.md`, Attachment(`inc é;"x.md`))
	assert.Equal(t, `attachment; filename="a b.md"`, Attachment("a b.md"), "quoted by mime.FormatMediaType")
}
