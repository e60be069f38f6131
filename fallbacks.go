package hasql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
)

// The calls below run on a physical session's inner connection. Where the
// inner driver lacks an optional interface they do exactly what database/sql
// does in its own ctxutil.go, so that hasql, which always implements the
// interface, behaves as if it were not there.

var (
	errNamedParams    = errors.New("sql: driver does not support the use of Named Parameters")
	errIsolationLevel = errors.New("sql: driver does not support non-default isolation level")
	errReadOnlyTx     = errors.New("sql: driver does not support read-only transactions")
)

func (ph *session) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	args = ph.poolerArgs(args)
	if ph.execerCtx != nil {
		return ph.execerCtx.ExecContext(ctx, query, args)
	}
	if ph.execer == nil {
		return nil, driver.ErrSkip
	}
	dargs, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ph.execer.Exec(query, dargs)
}

func (ph *session) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	args = ph.poolerArgs(args)
	if ph.queryerCtx != nil {
		return ph.queryerCtx.QueryContext(ctx, query, args)
	}
	if ph.queryer == nil {
		return nil, driver.ErrSkip
	}
	dargs, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ph.queryer.Query(query, dargs)
}

func (ph *session) ping(ctx context.Context) error {
	if ph.pinger == nil {
		return nil
	}
	return ph.pinger.Ping(ctx)
}

// resetSession resets the inner connection for reuse as database/sql does:
// only driver.ErrBadConn counts; database/sql ignores every other error
// from ResetSession and uses the connection anyway.
func (ph *session) resetSession(ctx context.Context) error {
	if ph.resetter == nil {
		return nil
	}
	if err := ph.resetter.ResetSession(ctx); err != nil && errors.Is(err, driver.ErrBadConn) {
		return err
	}
	return nil
}

func (ph *session) prepare(ctx context.Context, query string) (driver.Stmt, error) {
	if ph.pooled {
		// Behind a transaction pooler a server-side statement would not
		// outlive this round trip's server connection.
		if si, ok, err := ph.prepareDescribed(ctx, query); ok {
			return si, err
		}
	}
	if ph.prepCtx != nil {
		return ph.prepCtx.PrepareContext(ctx, query)
	}
	si, err := ph.inner.Prepare(query)
	if err == nil && ctx.Err() != nil {
		si.Close()
		return nil, ctx.Err()
	}
	return si, err
}

func (ph *session) begin(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if ph.beginTx != nil {
		txi, err := ph.beginTx.BeginTx(ctx, opts)
		if err == nil && ph.pooled && len(ph.state) > 0 {
			// Behind a pooler, session state lives in each transaction.
			if err = ph.applyState(ctx); err != nil {
				if txi.Rollback() != nil {
					ph.bad.Store(true)
				}
				return nil, err
			}
		}
		return txi, err
	}
	if opts.Isolation != 0 {
		return nil, errIsolationLevel
	}
	if opts.ReadOnly {
		return nil, errReadOnlyTx
	}
	txi, err := ph.inner.Begin() //nolint:staticcheck // the fallback database/sql itself uses
	if err == nil && ctx.Err() != nil {
		txi.Rollback()
		return nil, ctx.Err()
	}
	return txi, err
}

func stmtExec(ctx context.Context, si driver.Stmt, args []driver.NamedValue) (driver.Result, error) {
	if s, ok := si.(driver.StmtExecContext); ok {
		return s.ExecContext(ctx, args)
	}
	dargs, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return si.Exec(dargs) //nolint:staticcheck
}

func stmtQuery(ctx context.Context, si driver.Stmt, args []driver.NamedValue) (driver.Rows, error) {
	if s, ok := si.(driver.StmtQueryContext); ok {
		return s.QueryContext(ctx, args)
	}
	dargs, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return si.Query(dargs) //nolint:staticcheck
}

func namedValueToValue(named []driver.NamedValue) ([]driver.Value, error) {
	dargs := make([]driver.Value, len(named))
	for n, param := range named {
		if len(param.Name) > 0 {
			return nil, errNamedParams
		}
		dargs[n] = param.Value
	}
	return dargs, nil
}

// convertAdhocArgs converts the arguments of ad-hoc work as database/sql's
// driverArgsConnLocked does without a statement: the connection's checker,
// else (or on driver.ErrSkip) the default conversion; driver.ErrRemoveArgument
// drops an argument; errors read as database/sql's. args is reused.
func convertAdhocArgs(ck driver.NamedValueChecker, args []driver.NamedValue) ([]driver.NamedValue, error) {
	out := args[:0]
	for _, a := range args {
		nv := driver.NamedValue{Name: a.Name, Ordinal: len(out) + 1, Value: a.Value}
		err := driver.ErrSkip
		if ck != nil {
			err = ck.CheckNamedValue(&nv)
		}
		if err == driver.ErrSkip {
			nv.Value, err = driver.DefaultParameterConverter.ConvertValue(nv.Value)
		}
		switch err {
		case nil:
			out = append(out, nv)
		case driver.ErrRemoveArgument:
		default:
			what := fmt.Sprintf("$%d", nv.Ordinal)
			if nv.Name != "" {
				what = fmt.Sprintf("with name %q", nv.Name)
			}
			return nil, fmt.Errorf("sql: converting argument %s type: %w", what, err)
		}
	}
	return out, nil
}

func valuesToNamed(args []driver.Value) []driver.NamedValue {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return named
}
