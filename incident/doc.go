// Package incident is the domain of breach response: what an incident is,
// how it moves through its lifecycle, and the contracts of the host code that
// detects, investigates and stores incidents.
//
// # The record
//
// An [Incident] is opened from a [Signal] and carries everything needed to
// resume its response and to report on it: state and [Incident.Version],
// phase timestamps, a bounded [SignalSummary], containment [ActionRecord]s,
// the [Investigation] and its [Impact], the notify [Decision], customer
// [Delivery] records, prevention [Task]s and a hash-chained [Timeline];
// people add a commander, [Observable] evidence and merge links
// ([Incident.MergedInto], [Incident.Merged]). Credentials never enter the
// record: a signal's [Secret] is kept as its fingerprint, and evidence that
// looks like one ([LooksLikeCredential]) is refused. [Incident.Markdown] renders the record as a deterministic
// Markdown post-incident report.
//
// # The register
//
// Every incident stays queryable once it ends (GDPR Art. 33(5) asks for
// every breach to be documented, notified or not). A store that implements
// [Lister] returns the register a [Page] at a time, newest first, selected
// by a [ListFilter] and paged by an opaque [Cursor]. [WriteJSON] exports
// incidents in their JSON form, whose snake_case field names are stable, and
// [WriteMarkdownRegister] as a Markdown table with each notify decision and
// its reason.
//
// # The lifecycle
//
// [Lifecycle] is a validated transition table compiled with
// github.com/looplab/fsm; [Standard] is the one the orchestrator in package
// breach drives. It answers [Lifecycle.Next] without allocating and renders
// itself as Mermaid or Graphviz text.
//
// # Host contracts
//
// A host implements [Store] (or uses [MemStore]), optionally [Leaser] and
// [Lister], and, for each kind of
// incident, may provide [Detector]s and an [Investigator]. Each interface
// has a function adapter ([DetectorFunc], [InvestigatorFunc]). Plugin calls
// are governed by a [Policy]: attempts, per-attempt timeouts with a fresh
// context, jittered backoff, [Permanent] errors that stop retries, and
// panics recovered into [*PanicError].
//
// Package incidenttest checks a host's Store against the contract.
package incident
