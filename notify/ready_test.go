package notify_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/notify"
)

// TestUnbuiltTemplateDoesNotRender: a zero or nil Template returns an
// error matching ErrTemplate instead of panicking, and says it is not
// ready; built templates are.
func TestUnbuiltTemplateDoesNotRender(t *testing.T) {
	for name, tpl := range map[string]*notify.Template{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			var r notify.Rendered
			var err error
			require.NotPanics(t, func() { r, err = tpl.Render(notify.Notice{}) })
			assert.ErrorIs(t, err, notify.ErrTemplate)
			assert.Equal(t, notify.Rendered{}, r)
			assert.False(t, tpl.Ready())
		})
	}
	assert.True(t, notify.DefaultTemplate().Ready())
	assert.True(t, notify.MustTemplate("s", "t", "").Ready())
}
