package postgres_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/breachkit/breach/incident"
	"github.com/breachkit/breach/incident/pgstore"
)

const (
	replicas   = 3
	signals    = 20_000
	keys       = 1_000
	inFlight   = 32
	leaseTTL   = 2 * time.Second
	flushEvery = 5 * time.Millisecond   // the group commit interval
	stepWork   = 100 * time.Millisecond // how long containment takes: incidents are mid-step when the victim dies
	victim     = 2                      // index of the replica killed with SIGKILL
	killAfter  = signals / 2
	settleBy   = 2 * time.Minute // bound on the wait for every incident to close
)

// replica is one replica process.
type replica struct {
	name   string
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
	dead   atomic.Bool
	acked  atomic.Int64 // signals this replica acknowledged
	stderr string       // its log file
}

func (r *replica) url(path string) string { return "http://" + r.addr + path }

// TestReplicas runs three replica processes, each with its own connection
// pool, on one database; sends them 20,000 signals over 1,000 keys, each to a
// random replica; kills one with SIGKILL half-way; and checks what the
// database holds once every incident has closed.
func TestReplicas(t *testing.T) {
	url := os.Getenv("BREACH_POSTGRES_URL")
	if url == "" {
		msg := "set BREACH_POSTGRES_URL=postgres://breach:breach@127.0.0.1:5432/breach?sslmode=disable to run against PostgreSQL; " +
			".ci/run does this (eval \"$(bash .ci/postgres-setup.sh)\" starts one and prints the line)"
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but BREACH_POSTGRES_URL is not: " + msg)
		}
		t.Skip(msg)
	}
	if testing.Short() {
		t.Skip("starts three processes and sends 20,000 signals")
	}
	began := time.Now()
	ctx := t.Context()
	dir := t.TempDir()

	// A schema of its own, kept when the test fails, for a look inside.
	schema := fmt.Sprintf("replicas_%d", time.Now().UnixNano())
	db := openDB(t, url, schema)

	bin := filepath.Join(dir, "replica")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/replica")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building the replica:\n%s", out)

	reps := make([]*replica, replicas)
	for i := range reps {
		reps[i] = startReplica(t, bin, dir, url, schema, fmt.Sprintf("replica-%d", i+1))
	}
	t.Cleanup(func() {
		for _, r := range reps {
			stopReplica(r)
		}
		if t.Failed() {
			for _, r := range reps {
				b, _ := os.ReadFile(r.stderr)
				t.Logf("%s log (last 3000 bytes):\n%s", r.name, tail(b, 3000))
			}
		}
	})
	started := time.Now()

	// The signals: new keys keep coming all through the storm (key k first
	// at signal 20k), and every other signal is about a random key seen
	// already. So incidents open and are driven all along, and the kill
	// half-way catches some mid-step.
	rng := rand.New(rand.NewPCG(1, 2))
	order := make([]int, signals)
	for i := range order {
		if i%(signals/keys) == 0 {
			order[i] = i / (signals / keys)
		} else {
			order[i] = rng.IntN(i/(signals/keys) + 1)
		}
	}

	client := &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: inFlight, MaxConnsPerHost: inFlight},
	}
	var (
		acked     atomic.Int64
		failures  atomic.Int64 // requests that failed and were sent again
		killedAt  time.Time    // by the database's clock
		victimAck int64        // signals the victim acknowledged before it died
		midStep   bool         // the victim was in a containment call when killed
	)

	// The killer: once half the signals are in, it waits for the victim to
	// be inside a containment call (each takes stepWork), so that the kill
	// cuts a step short, and kills it; at three quarters it kills it
	// whatever it is doing.
	sending := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		v := reps[victim]
		for acked.Load() < killAfter {
			select {
			case <-sending:
				return
			case <-time.After(time.Millisecond):
			}
		}
		for acked.Load() < 3*signals/4 {
			var n int
			// Only a call in its first half counts: one about to end
			// could end between this read and the kill.
			err := db.QueryRow(ctx, `SELECT count(*) FROM steps WHERE replica = $1 AND kind = 'contain' AND finished_at IS NULL
				AND started_at > clock_timestamp() - make_interval(secs => $2)`, v.name, (stepWork / 2).Seconds()).Scan(&n)
			if err == nil && n > 0 {
				midStep = true
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Not on the test's goroutine: no require here.
		assert.NoError(t, v.cmd.Process.Kill()) // SIGKILL: no flush, no unlease, no goodbye
		<-v.exited
		v.dead.Store(true)
		victimAck = v.acked.Load()
		assert.NoError(t, db.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&killedAt))
		t.Logf("killed %s (SIGKILL) after %d signals acknowledged in all, %d by it; in a containment call: %v",
			v.name, acked.Load(), victimAck, midStep)
	}()

	work := make(chan int)
	var wg sync.WaitGroup
	var sendErr error
	var errOnce sync.Once
	failed := make(chan struct{})
	for w := range inFlight {
		wrng := rand.New(rand.NewPCG(uint64(w), 7))
		wg.Go(func() {
			for i := range work {
				k := order[i]
				sig := map[string]any{
					"Kind":     "apikey.compromised",
					"Subject":  fmt.Sprintf("key_%04d", k),
					"Severity": []string{"medium", "high", "critical"}[wrng.IntN(3)],
					"Source":   "gateway",
					"Summary":  fmt.Sprintf("signal %d", i),
				}
				if err := sendToSomeReplica(ctx, client, reps, wrng, "/signal", sig, &failures); err != nil {
					errOnce.Do(func() { sendErr = err; close(failed) })
					continue
				}
				acked.Add(1)
			}
		})
	}
	sendStart := time.Now()
feed:
	for i := range order {
		select {
		case work <- i:
		case <-failed:
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(sending)
	<-killed
	require.NoError(t, sendErr)
	sendTook := time.Since(sendStart)
	require.EqualValues(t, signals, acked.Load(), "every signal acknowledged by some replica")
	require.True(t, reps[victim].dead.Load(), "the victim was killed")
	t.Logf("%d signals acknowledged in %s (%d requests failed and were sent to another replica)", signals, sendTook.Round(time.Millisecond), failures.Load())

	// The storm is over: an operator completes the review task of each
	// incident once it reaches resolution, through any live replica; the
	// playbook then resolves and closes it.
	settleStart := time.Now()
	completed := map[string]bool{}
	deadline := time.Now().Add(settleBy)
	var states map[string]int
	for {
		rows, err := db.Query(ctx, `SELECT id, state FROM incident_heads`)
		require.NoError(t, err)
		states = map[string]int{}
		var resolving []string
		var escalated []string
		for rows.Next() {
			var id, state string
			require.NoError(t, rows.Scan(&id, &state))
			states[state]++
			switch state {
			case string(incident.StateResolving):
				if !completed[id] {
					resolving = append(resolving, id)
				}
			case string(incident.StateEscalated):
				escalated = append(escalated, id)
			}
		}
		require.NoError(t, rows.Err())
		require.Empty(t, escalated, "no incident may be escalated; states: %v", states)
		if states[string(incident.StateClosed)] == keys && len(states) == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "incidents still open after %s: %v", settleBy, states)
		completeAll(ctx, t, client, reps, resolving, completed, &failures)
		time.Sleep(200 * time.Millisecond)
	}
	settleTook := time.Since(settleStart)
	t.Logf("every incident closed %s after the last signal", settleTook.Round(time.Millisecond))

	// Signal counts reach the store with each replica's flush, which goes
	// through its dirty incidents one by one: wait until the sum holds
	// still, then stop the live replicas gracefully, which flushes the
	// rest.
	countSum := func() int64 {
		var n int64
		require.NoError(t, db.QueryRow(ctx, `SELECT coalesce(sum((head->'signals'->>'count')::bigint), 0) FROM incident_heads`).Scan(&n))
		return n
	}
	flushStart := time.Now()
	running, lastChange := countSum(), time.Now()
	for time.Since(lastChange) < 2*time.Second && time.Since(flushStart) < 30*time.Second {
		time.Sleep(250 * time.Millisecond)
		if n := countSum(); n != running {
			running, lastChange = n, time.Now()
		}
	}
	t.Logf("signal counts stopped changing at %d, %s after every incident closed", running, lastChange.Sub(flushStart).Round(time.Millisecond))
	for i, r := range reps {
		if i == victim {
			continue
		}
		require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not stop within 30s of SIGTERM", r.name)
		}
		assert.True(t, r.cmd.ProcessState.Success(), "%s exit: %v", r.name, r.cmd.ProcessState)
		b, err := os.ReadFile(r.stderr)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "final flush of signal counts failed", "%s lost counts on the way out", r.name)
	}

	// ---- what the database holds ----
	var incidents, distinctKeys int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*), count(DISTINCT dedup_key) FROM incident_heads`).Scan(&incidents, &distinctKeys))
	assert.Equal(t, keys, incidents, "exactly one incident per key")
	assert.Equal(t, keys, distinctKeys)

	byID := map[string]*incident.Incident{}
	// Every incident, read whole through the store's own reads.
	store, err := pgstore.New(ctx, db)
	require.NoError(t, err)
	idRows, err := db.Query(ctx, `SELECT id FROM incident_heads`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(idRows, pgx.RowTo[string])
	require.NoError(t, err)
	var finalSum int64
	var maxCloseLag time.Duration
	slowCloses := 0
	for _, id := range ids {
		inc, err := incident.Load(ctx, store, id)
		require.NoError(t, err)
		byID[inc.ID] = inc
		finalSum += inc.Signals.Count
		assert.Equal(t, incident.StateClosed, inc.State, "incident %s", inc.ID)
		assert.NoError(t, inc.Timeline.Verify(), "incident %s: timeline", inc.ID)
		if assert.Len(t, inc.Deliveries, 1, "incident %s: one customer, one channel", inc.ID) {
			assert.Equal(t, incident.DeliverySent, inc.Deliveries[0].Status, "incident %s", inc.ID)
		}
		sent := 0
		for _, e := range inc.Timeline {
			if e.Type == incident.EntryDelivery && strings.Contains(e.Detail, ": 1 sent") {
				sent++
			}
		}
		assert.Equal(t, 1, sent, "incident %s: the notice is recorded sent once", inc.ID)
		if assert.Len(t, inc.Actions, 1, "incident %s", inc.ID) {
			assert.Equal(t, incident.ActionApplied, inc.Actions[0].Status, "incident %s", inc.ID)
		}
		assert.Empty(t, inc.OpenTasks(), "incident %s", inc.ID)
		// How long the close took after the operator's CompleteTask. The
		// replica that took it queues the drive behind its periodic resume
		// of every open incident, and when another replica holds the lease
		// at that moment it leaves the incident to a later resume.
		for _, task := range inc.Tasks {
			if task.ID == "review" && !task.DoneAt.IsZero() {
				lag := inc.ClosedAt.Sub(task.DoneAt)
				maxCloseLag = max(maxCloseLag, lag)
				if lag > leaseTTL/2 {
					slowCloses++
				}
			}
		}
	}

	// Deliveries, as the customers' inbox saw them.
	type seen struct {
		incident string
		replicas []string
	}
	inbox := map[string]*seen{}
	rows, err := db.Query(ctx, `SELECT idempotency_key, incident_id, replica FROM deliveries_seen`)
	require.NoError(t, err)
	handed := 0
	for rows.Next() {
		var key, id, rep string
		require.NoError(t, rows.Scan(&key, &id, &rep))
		handed++
		s := inbox[key]
		if s == nil {
			s = &seen{incident: id}
			inbox[key] = s
		}
		assert.Equal(t, s.incident, id, "key %s used for two incidents", key)
		s.replicas = append(s.replicas, rep)
	}
	require.NoError(t, rows.Err())
	assert.Len(t, inbox, keys, "one notice per incident, by idempotency key")
	duplicates, dupOutsideCrash := 0, 0
	for key, s := range inbox {
		inc := byID[s.incident]
		if assert.NotNil(t, inc, "delivery %s for an unknown incident", key) && len(inc.Deliveries) == 1 {
			assert.Equal(t, key, inc.Deliveries[0].IdempotencyKey, "the key sent is the key recorded")
		}
		if len(s.replicas) > 1 {
			duplicates += len(s.replicas) - 1
			// A repeat is the at-least-once re-send after a replica died
			// between handing the notice over and recording it sent.
			byVictim := false
			for _, r := range s.replicas {
				byVictim = byVictim || r == reps[victim].name
			}
			if !byVictim {
				dupOutsideCrash++
			}
		}
	}
	assert.Zero(t, dupOutsideCrash, "notices handed over twice without the killed replica in it")
	for id, inc := range byID {
		if len(inc.Deliveries) == 1 {
			_, ok := inbox[inc.Deliveries[0].IdempotencyKey]
			assert.True(t, ok, "incident %s: its delivery never reached the inbox", id)
		}
	}

	// No incident was stepped by two replicas at once: no two plugin
	// calls on one incident by different replicas overlap in time. A call
	// the victim died in ends when it died.
	var unfinishedLive int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM steps WHERE finished_at IS NULL AND replica <> $1`,
		reps[victim].name).Scan(&unfinishedLive))
	assert.Zero(t, unfinishedLive, "plugin calls of live replicas that never finished")
	var overlaps int
	var example string
	require.NoError(t, db.QueryRow(ctx, `
		SELECT count(*), coalesce(min(a.incident_id || ': ' || a.replica || ' ' || a.kind || ' and ' || b.replica || ' ' || b.kind), '')
		  FROM steps a JOIN steps b
		    ON a.incident_id = b.incident_id AND a.replica <> b.replica AND a.id < b.id
		 WHERE a.started_at < coalesce(b.finished_at, $1) AND b.started_at < coalesce(a.finished_at, $1)`,
		killedAt).Scan(&overlaps, &example))
	assert.Zero(t, overlaps, "plugin calls of two replicas on one incident overlapped, e.g. %s", example)

	var steps, takenOver, diedIn, containRepeats int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM steps`).Scan(&steps))
	require.NoError(t, db.QueryRow(ctx, `
		SELECT count(*) FROM (SELECT incident_id FROM steps GROUP BY incident_id HAVING count(DISTINCT replica) > 1) x`).Scan(&takenOver))
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM steps WHERE finished_at IS NULL`).Scan(&diedIn))
	require.NoError(t, db.QueryRow(ctx, `
		SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM steps WHERE kind = 'contain' GROUP BY incident_id) x`).Scan(&containRepeats))
	// Every plugin call the victim died in was made again, after the kill,
	// by a replica that took the incident over when the lease ran out.
	var notRedone int
	require.NoError(t, db.QueryRow(ctx, `
		SELECT count(*) FROM steps d
		 WHERE d.replica = $1 AND d.finished_at IS NULL AND NOT EXISTS (
		       SELECT 1 FROM steps s
		        WHERE s.incident_id = d.incident_id AND s.kind = d.kind AND s.replica <> d.replica
		          AND s.started_at >= $2 AND s.ok)`,
		reps[victim].name, killedAt).Scan(&notRedone))
	assert.Zero(t, notRedone, "plugin calls the killed replica died in and no other replica made again")
	if midStep {
		assert.Positive(t, diedIn, "the victim was killed inside a containment call")
	}
	var staleLeases int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM leases`).Scan(&staleLeases))

	// Signal counts. Acknowledged means durable: every signal a replica
	// acknowledged, the killed one included, is counted; a request that
	// failed mid-way and was sent again may have been recorded twice.
	lost := int64(signals) - finalSum
	t.Logf("signal counts on the incidents add up to %d of %d acknowledged (the killed replica had acknowledged %d; "+
		"group commit every %s): %d lost, or counted twice if negative", finalSum, signals, victimAck, flushEvery, lost)
	assert.LessOrEqual(t, lost, int64(0), "no acknowledged signal is lost, not even the killed replica's")
	assert.LessOrEqual(t, -lost, failures.Load(), "only signals sent twice may be counted twice")

	for _, r := range reps {
		t.Logf("%s acknowledged %d signals", r.name, r.acked.Load())
	}
	t.Logf("incidents: %d, all closed; deliveries handed over: %d for %d keys (%d repeats by key, all after the kill); "+
		"plugin calls: %d, %d cut short by the kill; incidents stepped by more than one replica: %d; containment re-run: %d; "+
		"overlapping calls: %d; leases left by the dead replica: %d",
		incidents, handed, len(inbox), duplicates, steps, diedIn, takenOver, containRepeats, overlaps, staleLeases)
	t.Logf("from the review's completion to the close: at most %s; %d incidents took more than %s",
		maxCloseLag, slowCloses, leaseTTL/2)
	t.Logf("timings: replicas up in %s, signals sent in %s, all closed %s later; total %s",
		started.Sub(began).Round(time.Millisecond), sendTook.Round(time.Millisecond),
		settleTook.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// openDB creates schema and returns a pool on it for the test's queries. The
// schema is dropped when the test passes.
func openDB(t *testing.T, url, schema string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 4
	db, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	_, err = db.Exec(t.Context(), "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		defer db.Close()
		if t.Failed() {
			t.Logf("schema %s kept for a look", schema)
			return
		}
		_, err := db.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		assert.NoError(t, err)
	})
	return db
}

func startReplica(t *testing.T, bin, dir, url, schema, name string) *replica {
	t.Helper()
	r := &replica{name: name, exited: make(chan struct{}), stderr: filepath.Join(dir, name+".log")}
	logf, err := os.Create(r.stderr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = logf.Close() })
	r.cmd = exec.Command(bin, "-db", url, "-schema", schema, "-name", name,
		"-lease", leaseTTL.String(), "-flush", flushEvery.String(), "-work", stepWork.String())
	r.cmd.Stderr = logf
	stdout, err := r.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, r.cmd.Start())
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	lines := bufio.NewScanner(stdout)
	addr := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "listening "); ok {
				addr <- a
			}
		}
	}()
	select {
	case r.addr = <-addr:
	case <-r.exited:
		b, _ := os.ReadFile(r.stderr)
		t.Fatalf("%s exited before listening:\n%s", name, b)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30s", name)
	}
	return r
}

// stopReplica stops a live replica gracefully (SIGTERM), or kills it after
// a few seconds.
func stopReplica(r *replica) {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// sendToSomeReplica POSTs v to a random live replica, and to another one
// when that fails (a replica just killed refuses or drops the request),
// counting the failures.
func sendToSomeReplica(ctx context.Context, client *http.Client, reps []*replica, rng *rand.Rand, path string, v any, failures *atomic.Int64) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var last error
	for try := 0; try < 20; try++ {
		r := reps[rng.IntN(len(reps))]
		if r.dead.Load() {
			continue
		}
		status, msg, err := post(ctx, client, r.url(path), body)
		if err == nil && status/100 == 2 {
			r.acked.Add(1)
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s: %d %s", r.name, status, msg)
			if status/100 == 4 {
				return err // the request is wrong: sending it elsewhere will not help
			}
		}
		last = err
		failures.Add(1)
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no replica took %s: %w", path, last)
}

func post(ctx context.Context, client *http.Client, url string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// completeAll completes the review task of each incident in ids through
// random live replicas, remembering which succeeded.
func completeAll(ctx context.Context, t *testing.T, client *http.Client, reps []*replica, ids []string, completed map[string]bool, failures *atomic.Int64) {
	t.Helper()
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for w := range 16 {
		rng := rand.New(rand.NewPCG(uint64(w), 11))
		wg.Go(func() {
			for id := range work {
				err := sendToSomeReplica(ctx, client, reps, rng, "/complete", map[string]string{"Incident": id, "Task": "review"}, failures)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Logf("completing the review of %s: %v (will try again)", id, err)
					}
					continue
				}
				mu.Lock()
				completed[id] = true
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
