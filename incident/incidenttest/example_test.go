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
// sub-microsecond digits may be lost, nothing else. The incident is written
// whole with incident.Split and read back whole with incident.Load.
func ExampleNormalize() {
	inc := incidenttest.FullIncident("inc_7f3a9c", "apikey.compromised/key_123")
	inc.UpdatedAt = time.Now() // nanoseconds and a monotonic reading

	s := incident.NewMemStore()
	ch := incident.Split(inc) // the head, and the parts: entries, deliveries, customers
	if err := s.Create(context.Background(), ch); err != nil {
		fmt.Println(err)
		return
	}
	inc.Version = ch.Head.Version // set by the store: 1
	got, err := incident.Load(context.Background(), s, inc.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
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
