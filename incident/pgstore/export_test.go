package pgstore

// SetBackfillBatch sets the batch size of the backfill of migration 2 and
// returns a function that restores it. For tests that do not run in
// parallel.
func SetBackfillBatch(n int) (restore func()) {
	old := backfillBatch
	backfillBatch = n
	return func() { backfillBatch = old }
}
