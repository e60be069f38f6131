// Package cbslog is a hasql callback package that writes one structured
// log/slog line for every intercepted driver call: its Fn, how long it took,
// the rows an exec affected, and its error. Query text is included unless
// Options.OmitQuery is set; argument values only with Options.LogArgs.
//
// Load it by name on any connector:
//
//	cbslog.Register("slog", logger, cbslog.Options{})
//	db, err := sql.Open("hasql", "pgx:postgres://db/app?hasql.callbacks=slog")
//
// or install it on one connector's own callbacks:
//
//	c, _ := hasql.ConnectorOf(db)
//	cbslog.Package(logger, cbslog.Options{})(c.Callbacks())
//
// Calls that end in driver.ErrSkip (database/sql then falls back to
// prepare/exec/close, each logged on its own) and calls failed by another
// callback's panic are not logged.
package cbslog

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hasqlgo/hasql"
)

// Options configures the log lines.
type Options struct {
	// Level is the level of lines for calls that succeed. Failed calls are
	// logged at slog.LevelError.
	Level slog.Level
	// LogArgs logs argument values; without it they are redacted to
	// "[n redacted]".
	LogArgs bool
	// OmitQuery leaves the query text out.
	OmitQuery bool
	// Fns limits logging to these calls; empty means every Fn.
	Fns []hasql.Fn
}

// Message is the message of every line cbslog writes.
const Message = "hasql call"

// startKey marks a call's start time in Call.Ctx; each Package has its own.
type startKey struct{ _ byte }

// Package returns a setup function for hasql.RegisterPackage, or to apply to
// a connector's own Callbacks. A nil logger means slog.Default() at the time
// of each call. It registers an entry and an exit callback
// for each logged Fn, chaining to any callback already registered there.
func Package(logger *slog.Logger, opts Options) func(*hasql.Callbacks) error {
	key := &startKey{}
	return func(r *hasql.Callbacks) error {
		fns := opts.Fns
		if len(fns) == 0 {
			for fn := hasql.FnConnect; fn <= hasql.FnClose; fn++ {
				fns = append(fns, fn)
			}
		}
		for _, fn := range fns {
			prevEntry, prevExit := r.Get(fn, hasql.Entry), r.Get(fn, hasql.Exit)
			r.Register(fn, hasql.Entry, func(c *hasql.Call) error {
				c.Ctx = context.WithValue(c.Ctx, key, time.Now())
				if prevEntry != nil {
					return prevEntry(c)
				}
				return hasql.Continue
			})
			r.Register(fn, hasql.Exit, func(c *hasql.Call) error {
				ret := hasql.Continue
				if prevExit != nil {
					ret = prevExit(c)
				}
				err := c.Err
				if ret != hasql.Continue {
					err = ret
				}
				write(logger, opts, key, c, err)
				return ret
			})
		}
		return nil
	}
}

// Register makes the package available to connectors under name (see
// hasql.RegisterPackage, which panics if name is taken).
func Register(name string, logger *slog.Logger, opts Options) {
	hasql.RegisterPackage(name, Package(logger, opts))
}

func write(logger *slog.Logger, opts Options, key *startKey, c *hasql.Call, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	level := opts.Level
	if err != nil {
		level = slog.LevelError
	}
	ctx := c.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.String("fn", c.Fn.String()))
	if start, ok := ctx.Value(key).(time.Time); ok {
		attrs = append(attrs, slog.Duration("duration", time.Since(start)))
	}
	if c.Query != "" && !opts.OmitQuery {
		attrs = append(attrs, slog.String("query", c.Query))
	}
	if len(c.Args) > 0 && c.Fn != hasql.FnBegin { // FnBegin's Args hold its TxOptions
		if opts.LogArgs {
			vals := make([]any, len(c.Args))
			for i, a := range c.Args {
				vals[i] = a.Value
			}
			attrs = append(attrs, slog.Any("args", vals))
		} else {
			attrs = append(attrs, slog.String("args", fmt.Sprintf("[%d redacted]", len(c.Args))))
		}
	}
	if err == nil && c.Result != nil && (c.Fn == hasql.FnExec || c.Fn == hasql.FnStmtExec) {
		if n, rerr := c.Result.RowsAffected(); rerr == nil {
			attrs = append(attrs, slog.Int64("rows_affected", n))
		}
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	logger.LogAttrs(ctx, level, Message, attrs...)
}
