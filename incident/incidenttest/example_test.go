package incidenttest_test

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/incidenttest"
)

// A host testing its own encoding of incidents compares what it wrote with
// what it read back after Normalize: zones, monotonic clock readings and
// sub-microsecond digits may be lost, nothing else.
func ExampleNormalize() {
	inc := incidenttest.FullIncident("inc_7f3a9c", "apikey.compromised/key_123")
	inc.UpdatedAt = time.Now() // nanoseconds and a monotonic reading

	s := incident.NewMemStore()
	if err := s.Create(context.Background(), inc); err != nil {
		fmt.Println(err)
		return
	}
	got, _ := s.Get(context.Background(), inc.ID)
	// What a PostgreSQL store hands back: the instant in UTC, to the microsecond.
	got.UpdatedAt = got.UpdatedAt.UTC().Truncate(time.Microsecond)

	fmt.Println("equal as stored:", reflect.DeepEqual(inc, got))
	fmt.Println("equal normalised:", reflect.DeepEqual(incidenttest.Normalize(inc), incidenttest.Normalize(got)))
	fmt.Println("timeline verifies:", got.Timeline.Verify() == nil)
	// Output:
	// equal as stored: false
	// equal normalised: true
	// timeline verifies: true
}
