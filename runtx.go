package hasql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// defaultTxRetries is how many times RunTx runs its function again when
// hasql.tx_retries does not say (and for a *sql.DB not opened through hasql).
const defaultTxRetries = 10

// Back-off between RunTx's attempts: a random delay below base·2^attempt,
// at most txBackoffMax ("full jitter"), so that transactions that
// deadlocked or failed to serialize against each other do not meet again in
// step. A lost session needs no longer delay here: the next BeginTx waits
// at hasql's outage gate until the database is back (hasql.outage_wait).
const (
	txBackoffBase = 2 * time.Millisecond
	txBackoffMax  = time.Second
)

// RunTx begins a transaction with opts, runs fn in it and commits. It runs
// fn again from the start, in a new transaction (on a new session where the
// old one died), after a back-off, when the transaction certainly did not
// commit because:
//
//   - its session died before COMMIT was sent, or the commit-outcome guard
//     (hasql.txguard) resolved a lost COMMIT as not committed
//     (ErrTxNotCommitted);
//   - the server aborted it as a serialization failure or a deadlock
//     (PostgreSQL 40001, 40P01; MySQL/MariaDB 1213, and 1205, a lock wait
//     timeout; Galera's certification failure, which it reports as 1213),
//     whether fn got that error and returned it (wrapped or not) or Commit
//     did;
//   - BeginTx failed on a lost session (nothing has run yet).
//
// It returns nil once a commit succeeded, including one that hasql resolved
// as committed after a loss; fn is then never run again. When fn fails for
// any other reason, RunTx rolls back and returns fn's error unchanged. A
// commit whose outcome stayed unknown (ErrTxResolutionUnknown: the guard is
// off, or the database stayed away longer than hasql.outage_wait) is
// returned as it is, never run again. When the retries run out (hasql.tx_retries,
// default 10, re-runs after the first attempt), RunTx returns the last error
// wrapped; errors.Is and errors.As reach it. When ctx ends during a back-off,
// it returns ctx's error joined with the last one.
//
// fn must be safe to run more than once: it should touch nothing outside
// the transaction (no messages sent, no in-memory state kept from one run
// to the next). It gets the transaction's ctx; it must not commit or roll
// back tx itself.
//
// db need not be opened through hasql: with any other driver RunTx uses the
// default retries and recognises pgx's and go-sql-driver/mysql's conflict
// errors the same way (a session lost there is the driver's own error and is
// not run again).
func RunTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(ctx context.Context, tx *sql.Tx) error) error {
	retries := defaultTxRetries
	var d dialect
	if c, ok := ConnectorOf(db); ok {
		retries, d = c.cfg.txRetries, c.dialect
	} else {
		d = dialectOf("", db.Driver())
	}
	var last error
	for attempt := 0; ; attempt++ {
		err, final := runTxOnce(ctx, db, opts, fn, d)
		if final {
			return err
		}
		last = err
		if attempt >= retries {
			return fmt.Errorf("hasql: RunTx gave up after %d attempts: %w", attempt+1, last)
		}
		if err := txBackoff(ctx, attempt); err != nil {
			return errors.Join(err, last)
		}
	}
}

// runTxOnce is one attempt of RunTx. final reports that err (nil on
// success) is RunTx's answer; otherwise the transaction certainly did not
// commit and may run again.
func runTxOnce(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(context.Context, *sql.Tx) error, d dialect) (err error, final bool) {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		var lost *LostError
		// A transaction that failed to begin holds nothing; hasql has
		// already run BEGIN again where it could, so only a loss or a
		// conflict is worth another attempt.
		return err, !(errors.As(err, &lost) || txRerunnable(err, d))
	}
	if ferr := fn(ctx, tx); ferr != nil {
		// A rollback's own failure changes nothing for the caller: the
		// transaction is over either way (database/sql discards a session
		// whose rollback failed on a dead connection).
		_ = tx.Rollback()
		return ferr, !txRerunnable(ferr, d)
	}
	if cerr := tx.Commit(); cerr != nil {
		return cerr, !txRerunnable(cerr, d)
	}
	return nil, true
}

// txRerunnable reports whether err proves that the transaction did not
// commit and that running it again may succeed: the session was lost before
// the commit (or the guard says it did not commit), or the server aborted it
// as a serialization failure or deadlock. An unknown commit outcome is never
// rerunnable, whatever else the error carries; nor is the end of the
// caller's context.
func txRerunnable(err error, d dialect) bool {
	switch {
	case errors.Is(err, ErrTxResolutionUnknown), isCtxEnd(err):
		return false
	case errors.Is(err, ErrTxNotCommitted):
		return true
	}
	return d.classify(err)&(classTxConflict|classLockTimeout) != 0
}

// isCtxEnd reports whether err is the end of a context.
func isCtxEnd(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// txBackoff sleeps before RunTx's attempt after attempt (0-based), or
// returns ctx's error when ctx ends first.
func txBackoff(ctx context.Context, attempt int) error {
	ceiling := txBackoffMax
	if attempt < 20 {
		ceiling = min(txBackoffBase<<attempt, txBackoffMax)
	}
	t := time.NewTimer(time.Duration(rand.Int64N(int64(ceiling)) + 1))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
