package containmenttest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/breachkit/breach/containment"
	"github.com/breachkit/breach/containment/containmenttest"
	"github.com/breachkit/breach/incident"
)

// A host tests that its revoke action survives a flaky key service: the
// fake fails twice, and the Runner retries with the same idempotency key.
func ExampleFailN() {
	revoke := containmenttest.FailN(2, errors.New("key service: 503"))
	actions := []containment.Action{{
		Name:      "revoke-api-key",
		Container: revoke,
		Policy:    incident.Policy{Attempts: 5, Backoff: time.Millisecond},
	}}
	base := containment.Request{IncidentID: "inc_7f3a9c", Subject: "key_123"}

	results := containment.Runner{}.Apply(context.Background(), actions, base, nil)

	for _, c := range revoke.Calls() {
		fmt.Printf("%s %s attempt %d key %s\n", c.Method, c.Request.Subject, c.Request.Attempt, c.Request.IdempotencyKey)
	}
	fmt.Printf("attempts=%d err=%v\n", results[0].Attempts, results[0].Err)
	// Output:
	// Contain key_123 attempt 1 key brk_0472adad8a969acb37c4a4d4278f8af2
	// Contain key_123 attempt 2 key brk_0472adad8a969acb37c4a4d4278f8af2
	// Contain key_123 attempt 3 key brk_0472adad8a969acb37c4a4d4278f8af2
	// attempts=3 err=<nil>
}

// A Recorder shows what was contained, and what a dismissal released.
func ExampleRecorder() {
	var disable containmenttest.Recorder
	actions := []containment.Action{
		{Name: "disable-account", Container: &disable},
		{Name: "page-owner", Container: containmenttest.FailPermanent(errors.New("no owner on call"))},
	}
	base := containment.Request{IncidentID: "inc_7f3a9c", Account: "acct_42"}
	ctx := context.Background()

	applied := containment.Runner{}.Apply(ctx, actions, base, nil)
	fmt.Println(applied.Err())
	containment.Runner{}.Release(ctx, actions[:1], base, nil) // the incident was a false positive

	for _, r := range disable.Contained() {
		fmt.Println("contained", r.Action, r.Account)
	}
	for _, r := range disable.Released() {
		fmt.Println("released", r.Action, r.Account)
	}
	fmt.Println("calls with the key:", disable.Count(applied[0].IdempotencyKey))
	// Output:
	// containment action "page-owner" failed after 1 attempt(s): no owner on call
	// contained disable-account acct_42
	// released disable-account acct_42
	// calls with the key: 2
}
