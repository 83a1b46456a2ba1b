package breach

import (
	"context"
	"fmt"
	"strconv"

	"github.com/breachkit/breach/incident"
)

// Resolve marks the corrective work of an incident done. From investigating,
// contained or escalated it opens the playbook's tasks and resolves in one
// go when none is mandatory. It returns an *OpenTasksError (matching
// ErrOpenTasks) naming the mandatory tasks still open, and a
// *incident.TransitionError when the incident cannot be resolved in its
// state.
func (o *Orchestrator) Resolve(ctx context.Context, id, actor, note string) error {
	note, err := o.personsText(id, "note", note, false) // credentials never enter the record
	if err != nil {
		return err
	}
	var open []string
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		if err := dismissing(inc); err != nil {
			return err
		}
		open = nil
		if inc.State != incident.StateResolving && o.lc.Can(inc.State, incident.EventRemediate) {
			if err := o.fire(inc, incident.EventRemediate, actor, "resolution started: "+note); err != nil {
				return err
			}
		}
		if open = inc.OpenTasks(); len(open) > 0 && inc.State == incident.StateResolving {
			// Keep the move into resolution (it opened the tasks); refuse
			// only the resolve itself.
			return nil
		}
		return o.fire(inc, incident.EventResolve, actor, note)
	})
	if err == nil && len(open) > 0 {
		return &OpenTasksError{IncidentID: id, Tasks: open}
	}
	return err
}

// Close records that the post-incident review of a resolved incident is
// done. It returns a *incident.TransitionError for an incident that is not
// resolved.
func (o *Orchestrator) Close(ctx context.Context, id, actor, note string) error {
	note, err := o.personsText(id, "note", note, false) // credentials never enter the record
	if err != nil {
		return err
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		return o.fire(inc, incident.EventClose, actor, note)
	})
	return err
}

// CompleteTask marks a prevention task done. It returns an error matching
// ErrNoSuchTask for an unknown task; completing a done task again changes
// nothing.
func (o *Orchestrator) CompleteTask(ctx context.Context, id, taskID, actor, note string) error {
	note, err := o.personsText(id, "note", note, false) // credentials never enter the record
	if err != nil {
		return err
	}
	_, err = o.act(ctx, id, actor, func(inc *incident.Incident) error {
		for i := range inc.Tasks {
			t := &inc.Tasks[i]
			if t.ID != taskID {
				continue
			}
			if !t.Done {
				t.Done, t.DoneBy, t.DoneAt, t.Note = true, actor, o.cfg.now(), note
				o.record(inc, actor, incident.EntryTask, "task "+strconv.Quote(taskID)+" done: "+note)
			}
			return nil
		}
		return fmt.Errorf("%w: incident %s has no task %q", ErrNoSuchTask, inc.ID, taskID)
	})
	return err
}

func (o *Orchestrator) openTasks(inc *incident.Incident) {
	pb := o.cfg.playbooks[inc.Kind]
	if pb == nil {
		return
	}
	for _, t := range pb.Tasks {
		exists := false
		for _, have := range inc.Tasks {
			exists = exists || have.ID == t.ID
		}
		if !exists {
			inc.Tasks = append(inc.Tasks, incident.Task{ID: t.ID, Title: t.Title, Mandatory: t.Mandatory})
			kind := "optional"
			if t.Mandatory {
				kind = "mandatory"
			}
			o.record(inc, incident.ActorSystem, incident.EntryTask, "opened "+kind+" task "+strconv.Quote(t.ID)+": "+t.Title)
		}
	}
}
