// Package detect provides built-in detectors of unusual and unauthorized
// activity: a [Threshold] on how often something happens to one key, a
// [NewTerms] rule for values never seen before for a key, and a [Sequence]
// rule for one event followed by another. Each is an [incident.Detector]:
// the host feeds it events with a non-blocking Observe call on its hot path,
// and Detect, run by the orchestrator (or the host), evaluates them and
// reports signals.
//
// # How a detector runs
//
// Observe validates an event and appends it to a bounded queue; it never
// waits. When the queue is full it returns [ErrFull] and counts the event
// in [Stats].Full. Detect drains the queue on the calling goroutine, where
// the rule's state lives (so it needs no locks), and starts one more
// goroutine that hands signals to the [incident.Reporter]: a slow or failing
// reporter delays only the signals, never the evaluation. Signals wait in
// a second bounded queue; when it is full they are dropped, counted and
// logged. A reporter that returns an error is retried per
// [Options].Report; one that panics is recovered. Neither stops the detector.
//
// # Bounded memory
//
// Every rule tracks at most [Options].MaxKeys keys, each with state of a
// fixed size. When the table is full, a new key replaces one chosen by the
// CLOCK policy (see [Options].MaxKeys): keys seen only once go first, keys
// seen again since the last sweep are spared. A storm of unique keys
// therefore cannot grow memory, and pushes out other one-off keys before
// the keys that keep coming back. [NewTerms] also bounds the (key, value)
// pairs it remembers ([NewTermsConfig].MaxTerms).
//
// # Time
//
// Rules work on event time ([Event].Time), so they are deterministic for a
// given stream of events. [Options].Now, the clock, gives the time of events
// that carry none and bounds how far in the future an event may be. Events
// may arrive out of order by up to [Options].Skew behind the latest event
// time seen; older ones are dropped and counted in [Stats].Late.
//
// # Signals
//
// Each signal carries its evidence as attributes (counts, times, the events
// involved, the event's own attributes under a prefix), the rule's kind and
// severity, and a dedup key made of the rule's name and the event key that
// cannot collide across rules ([DedupKey]). Signals pass
// [incident.Signal.Validate]. Events never carry secrets into signals: an
// [Event].Credential is only checked for (an event whose fields contain it is
// refused with [ErrCredential]) and, when the event has no Key, replaced by
// its fingerprint.
package detect
