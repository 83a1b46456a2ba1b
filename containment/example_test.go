package containment_test

import (
	"context"
	"fmt"

	"github.com/breachkit/breach/containment"
)

func ExampleRunner_Apply() {
	revoke := containment.Func(func(ctx context.Context, req containment.Request) error {
		// A real container calls the key service, passing req.IdempotencyKey.
		fmt.Printf("revoking API key %s (attempt %d)\n", req.Subject, req.Attempt)
		return nil
	})
	actions := []containment.Action{{
		Name:        "revoke-api-key",
		Description: "disabled the compromised API key",
		Container:   revoke,
	}}
	if err := containment.Validate(actions); err != nil {
		fmt.Println(err)
		return
	}

	base := containment.Request{IncidentID: "inc_7f3a9c", Subject: "key_123"}
	keyOf := func(a containment.Action) string { return containment.Key(base.IncidentID, a) }
	results := containment.Runner{}.Apply(context.Background(), actions, base, keyOf)

	for _, r := range results {
		fmt.Printf("%s: attempts=%d err=%v key=%s\n", r.Action, r.Attempts, r.Err, r.IdempotencyKey)
	}
	fmt.Println("all contained:", results.Err() == nil)
	// Output:
	// revoking API key key_123 (attempt 1)
	// revoke-api-key: attempts=1 err=<nil> key=brk_0472adad8a969acb37c4a4d4278f8af2
	// all contained: true
}
