// Package breach runs data-breach and security-incident response inside an
// existing Go backend. The host wires in its own storage and its own
// notification channels and gets a durable, tested response workflow in
// place of a runbook: signals from detectors become incidents, incidents
// are contained, investigated, communicated to the affected customers and
// resolved, and every step is on a tamper-evident timeline.
//
// # The pieces
//
//   - Package incident holds the domain: Signal, Incident, the Lifecycle
//     state machine, the Timeline, and the contracts a host implements:
//     Store, Detector, Investigator.
//   - Package containment stops the damage: a Container revokes a key or
//     restricts access; a Releaser undoes it for a false positive.
//   - Package notify tells people: a Notifier per channel, and the
//     customer notice Template.
//   - This package ties them together: an Orchestrator runs one Playbook
//     per kind of incident.
//
// # How an incident moves
//
// Report validates a signal and joins it to the open incident with the same
// dedup key, or opens one. Run drives open incidents with bounded
// concurrency: a contain-first playbook applies its containment actions,
// then investigates; an investigate-first one the other way round. The
// investigator's impact decides whether customers are notified: only when
// customer data was affected, and the decision and its reason are recorded
// either way. Notices go out once per customer and channel; then the
// playbook's prevention tasks open and a person resolves and closes the
// incident (or the playbook does, with AutoResolve and AutoClose). People
// act through Dismiss, Resolve, Close, Reopen, Retry and CompleteTask.
//
// # Guarantees
//
// Every transition is written to the Store with a compare-and-swap on the
// incident's Version before its side effects run, so a new Orchestrator on
// the same store resumes where another stopped. Each containment action and
// each delivery carries a stable idempotency key handed to the host's
// plugin, with the attempt number; deliveries are claimed before they are
// sent. A plugin that errors is retried per its incident.Policy; one that
// panics or hangs is recovered or timed out; when the policy is spent the
// incident is escalated with the reason, never dropped. Credentials carried
// by signals reach containers only: the record, the timeline, the logs and
// the messages hold a fingerprint.
package breach
