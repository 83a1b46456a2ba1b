package incident

// Internals the external tests (package incident_test) check directly.
var (
	FormatDuration = formatDuration
	ReportCell     = cell
	MermaidText    = mermaidText
)
