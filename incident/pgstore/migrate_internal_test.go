package pgstore

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmbeddedMigrations(t *testing.T) {
	require.Len(t, migrations, LatestVersion, "LatestVersion must be the number of embedded migrations")
	for i, m := range migrations {
		assert.Equal(t, i+1, m.version)
		assert.NotEmpty(t, m.up, m.name)
		assert.NotEmpty(t, m.down, m.name)
	}
}

func TestLoadMigrationsRejects(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
	}{
		{"bad name", fstest.MapFS{"migrations/first.up.sql": file}},
		{"bad direction", fstest.MapFS{"migrations/0001_a.sideways.sql": file}},
		{"no down", fstest.MapFS{"migrations/0001_a.up.sql": file}},
		{"gap", fstest.MapFS{"migrations/0002_a.up.sql": file, "migrations/0002_a.down.sql": file}},
		{"two names", fstest.MapFS{"migrations/0001_a.up.sql": file, "migrations/0001_b.down.sql": file}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadMigrations(tc.files)
			assert.Error(t, err)
		})
	}
}
