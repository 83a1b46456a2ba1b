package incident

// Internals the external tests (package incident_test) check directly.
var (
	FormatDuration = formatDuration
	ReportCell     = cell
	MermaidText    = mermaidText
)

// SignalFastPath and SignalProblems expose the two halves of Validate, so
// the fuzz target can keep them in step.
func SignalFastPath(s *Signal) bool  { return s.valid() }
func SignalProblems(s *Signal) error { return s.problems() }
