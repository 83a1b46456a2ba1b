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
//     Store (with MemStore), Detector, Investigator. Package
//     incident/incidenttest checks a host's Store (TestStore).
//   - Package incident/secretscan receives leaked-credential reports from
//     code-hosting platforms (the secret-scanning partner protocol) and
//     turns them into signals.
//   - Package containment stops the damage: a Container revokes a key or
//     restricts access; a Releaser undoes it for a false positive; a
//     Verifier checks that it held. Package containment/containmenttest has
//     recording and failing fakes.
//   - Package notify tells people: a Notifier per channel, the customer
//     notice Template, fan-out over several channels; the wire protocols
//     live below it (Standard Webhooks, SMTP e-mail). Package
//     notify/notifytest has recording and failing fakes.
//   - This package ties them together: an Orchestrator runs one Playbook
//     per kind of incident.
//
// # How an incident moves
//
// Report validates a signal and joins it to the open incident with the same
// dedup key, or opens one. Run drives open incidents one step at a time
// (containment steps first): a contain-first playbook applies its
// containment actions, then investigates; an investigate-first one the other
// way round. The investigator's impact decides whether customers are
// notified: only when customer data was affected, and the decision and its
// reason are recorded either way. Notices go out once per customer and
// channel; then the playbook's prevention tasks open and a person resolves
// and closes the incident (or the playbook does, with AutoResolve and
// AutoClose).
//
// # People
//
// People act between steps, never waiting for the rest of an automated run:
// Dismiss (which interrupts the running step and releases containment),
// Resolve, Close, Reopen, Retry, CompleteTask, OverrideDecision, and, for
// containment actions whose Approval rule asks for it, Approve and
// Deny. Responders collaborate on an incident the same way: AddNote,
// AssignCommander (assign or hand over), AttachEvidence, ChangeSeverity
// (which re-evaluates approvals and on-call paging) and Merge (two
// incidents found to be one). The on-call notifier (WithOnCall) is paged when an incident is
// escalated to a person, when an action waits for approval, and when a
// clock is about to run out. NewConsole serves all of it to people as an
// http.Handler the host mounts: the register, each incident, a form for
// every action, and a JSON API, with the actor named by the host's own
// sign-in.
//
// # Clocks
//
// A Playbook's Clocks are the regulatory notification deadlines (GDPR,
// NIS2, SEC8K, HIPAA or custom, in calendar or business days): each starts
// and stops at a milestone, warns and escalates, can be paused
// (PauseClock, ResumeClock) or marked not applicable
// (MarkClockNotApplicable), and ends with the incident as met, late, missed
// or not applicable. RecordMilestone records what people did (the authority
// was notified). Run runs the checks every deadline interval (WithDeadlineInterval).
//
// # Rehearsal, observation, replicas
//
// RunGameDay rehearses a playbook on a simulated clock with every plugin
// replaced by a recorder. An Observer (WithObserver) is told of every
// signal, transition and step, with the context of the work, for metrics
// and tracing. Replicas share one Store; when it is an incident.Leaser, a
// lease per incident keeps two replicas from stepping one incident
// (WithLease), and a replica that dies is taken over.
//
// # Guarantees
//
// Every step's intent is written to the Store, with a compare-and-swap on
// the incident's Version, before its side effect, and its result after, so
// a new Orchestrator on the same store resumes where another stopped. Each
// containment action and each delivery carries a stable idempotency key
// handed to the host's plugin, with the attempt number; deliveries are
// claimed before they are sent. A plugin that errors is retried per its
// incident.Policy (a plugin may say when to retry, incident.RetryAfter); one
// that panics or hangs is recovered or timed out; when the policy is spent
// the incident is escalated with the reason, never dropped. Calls into the
// Store are isolated the same way (WithStoreTimeout): a store that panics
// fails the step, not the process. Credentials carried by signals reach
// containers only, and only for a bounded time (WithCredentialTTL): the
// record, the timeline, the logs and the messages hold a fingerprint.
package breach
