package incident

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The register's exports: every incident a Lister returns, as JSON for
// machines and as a Markdown table for people and auditors.

// WriteJSON writes incs to w as one JSON array, indented, each incident in
// its JSON form (see Incident for the field names). It writes "[]" for none. It writes one incident
// at a time; an error, from encoding (a severity out of range, say) or from
// w, leaves the output incomplete.
func WriteJSON(w io.Writer, incs ...*Incident) error {
	if len(incs) == 0 {
		_, err := io.WriteString(w, "[]\n")
		return err
	}
	if _, err := io.WriteString(w, "[\n"); err != nil {
		return err
	}
	for i, inc := range incs {
		b, err := json.MarshalIndent(inc, "  ", "  ")
		if err != nil {
			return fmt.Errorf("incident: encoding %s as JSON: %w", incidentID(inc), err)
		}
		sep := ",\n"
		if i == len(incs)-1 {
			sep = "\n]\n"
		}
		if _, err := io.WriteString(w, "  "+string(b)+sep); err != nil {
			return err
		}
	}
	return nil
}

func incidentID(inc *Incident) string {
	if inc == nil {
		return "a nil incident"
	}
	return "incident " + inc.ID
}

// WriteMarkdownRegister writes incs to w as a Markdown register of
// incidents: a heading, then one table row per incident, in the order
// given (a Lister's pages are newest first), with its ID, kind, subject,
// account, severity, state ("merged into …" names the parent of a merged
// incident), when it was detected and closed (UTC), and
// whether affected customers were notified with the decision's reason
// ("yes: …", "no: …", or "undecided" while there is no decision). Every
// value is escaped as Incident.Markdown escapes it, so record text cannot
// break the table; an empty value reads "—". A nil incident is skipped.
// The error is w's.
func WriteMarkdownRegister(w io.Writer, incs ...*Incident) error {
	var b strings.Builder
	b.WriteString("# Register of incidents\n\n")
	n := 0
	for _, inc := range incs {
		if inc != nil {
			n++
		}
	}
	switch n {
	case 0:
		b.WriteString("No incidents.\n")
	default:
		b.WriteString(plural(n, "incident") + ".\n\n")
		r := reportWriter{}
		var rows [][]string
		for _, inc := range incs {
			if inc == nil {
				continue
			}
			rows = append(rows, []string{
				cell(inc.ID), cell(inc.Kind), cell(inc.Subject), cell(inc.Account),
				cell(inc.Severity.String()), cell(stateText(inc)),
				reportTime(inc.DetectedAt), reportTime(inc.ClosedAt), notifiedText(inc.Decision),
			})
		}
		r.table([]string{"ID", "Kind", "Subject", "Account", "Severity", "State", "Detected", "Closed", "Notified"}, rows)
		b.WriteString(r.b.String())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// stateText is the register's State cell: the state, and the parent of an
// incident merged into another.
func stateText(inc *Incident) string {
	if inc.State == StateMerged && inc.MergedInto != "" {
		return string(inc.State) + " into " + inc.MergedInto
	}
	return string(inc.State)
}

// notifiedText is the register's Notified cell.
func notifiedText(d *Decision) string {
	if d == nil {
		return "undecided"
	}
	answer := "no"
	if d.Notify {
		answer = "yes"
	}
	if d.Reason == "" {
		return answer
	}
	return answer + ": " + mdText(d.Reason)
}
