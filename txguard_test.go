package hasql

// Tests of the commit-outcome guard's configuration (txguard.go). Its
// behaviour on lost commits needs real servers: txguard_integration_test.go.

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestTxGuardTableIsAValidatedQuotedIdentifier(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pg, my string // quoted; "" = rejected
	}{
		{"hasql_txguard", `"hasql_txguard"`, "`hasql_txguard`"},
		{"app.Guard$1", `"app"."Guard$1"`, "`app`.`Guard$1`"},
		{"_x", `"_x"`, "`_x`"},
		{"a.b.c", "", ""},
		{`x"; drop table t; --`, "", ""},
		{"x`y", "", ""},
		{"1abc", "", ""},
		{"a b", "", ""},
		{".a", "", ""},
		{"a.", "", ""},
		{strings.Repeat("n", 64), "", ""},
	} {
		err := validateGuardTable(tc.name)
		if tc.pg == "" {
			if !errors.Is(err, ErrDSN) || !strings.Contains(err.Error(), "hasql.txguard_table") {
				t.Errorf("%q: %v, want ErrDSN naming hasql.txguard_table", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.name, err)
			continue
		}
		if got := (pgxDialect{}).quoteTable(tc.name); got != tc.pg {
			t.Errorf("pgx quotes %q as %s, want %s", tc.name, got, tc.pg)
		}
		if got := (mysqlDialect{}).quoteTable(tc.name); got != tc.my {
			t.Errorf("mysql quotes %q as %s, want %s", tc.name, got, tc.my)
		}
	}
	// Through an Option, the same rule.
	inner, _ := (&FakeDriver{Caps: FakeCapsContext, DB: NoopFakeDB()}).OpenConnector("")
	if _, err := NewConnector(inner, WithTxGuardConfig(TxGuard{Mode: TxGuardOn, Table: "a;b"})); !errors.Is(err, ErrDSN) {
		t.Errorf("WithTxGuardConfig with a bad table: %v, want ErrDSN", err)
	}
}

// A driver hasql knows no guard statements for is refused when the guard is
// asked for, naming the key; with the guard off nothing changes.
func TestTxGuardNeedsADialectThatKnowsIt(t *testing.T) {
	inner, _ := (&FakeDriver{Caps: FakeCapsContext, DB: NoopFakeDB()}).OpenConnector("")
	if _, err := NewConnector(inner, WithTxGuard(TxGuardOn)); !errors.Is(err, ErrDSN) || !strings.Contains(err.Error(), "hasql.txguard") {
		t.Fatalf("guard on a generic driver: %v, want ErrDSN naming hasql.txguard", err)
	}
	c, err := NewConnector(inner, WithTxGuard(TxGuardOff))
	if err != nil {
		t.Fatal(err)
	}
	if c.guard != nil {
		t.Fatal("a guard with hasql.txguard=off")
	}
	c.Close()
}

// With the guard on, a read-only transaction whose session dies at COMMIT
// has nothing to resolve: Commit returns nil. Without the guard the outcome
// is reported unknown, as before.
func TestTxGuardReadOnlyCommitLostIsNil(t *testing.T) {
	for _, guard := range []bool{false, true} {
		fdb := NoopFakeDB()
		fdb.Inject(FakeFault{Kind: "commit", Nth: 1, Sent: true, Kill: true, Err: io.ErrUnexpectedEOF})
		inner, _ := (&FakeDriver{Caps: FakeCapsContext, DB: fdb}).OpenConnector("")
		c, err := NewConnector(inner)
		if err != nil {
			t.Fatal(err)
		}
		if guard {
			c.dialect, c.cfg.txGuard.Mode = dialectPgx, TxGuardOn
			if c.guard, err = newTxGuard(c); err != nil {
				t.Fatal(err)
			}
			c.guard.start()
		}
		db := sql.OpenDB(c)
		tx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		err = tx.Commit()
		if guard && err != nil || !guard && !errors.Is(err, ErrTxResolutionUnknown) {
			t.Errorf("guard %v: commit %v", guard, err)
		}
		db.Close()
	}
}
