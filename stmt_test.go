package hasql

// Tests of the handle's virtual statements (stmt.go) on fakedb: a *sql.Stmt
// follows the handle to whatever session it is bound to, prepared there.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"
)

// TestStmtPreparedAgainOnTheNewSession: a statement whose session was lost
// before its execution was sent runs on the new session, prepared there
// first; the application sees one successful Exec.
func TestStmtPreparedAgainOnTheNewSession(t *testing.T) {
	fdb := NoopFakeDB()
	prepares, execs := 0, 0
	fdb.OnPrepare = func(*FakeConn, context.Context, string) error { prepares++; return nil }
	fdb.OnStmtExec = func(*FakeStmt, context.Context, []driver.NamedValue) (driver.Result, error) {
		execs++
		return driver.RowsAffected(1), nil
	}
	inner, err := (&FakeDriver{Caps: FakeCapsContext, DB: fdb}).OpenConnector("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(inner)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := conn.PrepareContext(context.Background(), "UPDATE t SET v = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fdb.Inject(FakeFault{Kind: "stmtexec", Nth: 1, Kill: true}) // lost before it was sent
	if _, err := st.Exec(1); err != nil {
		t.Fatalf("Exec on a statement whose session was lost unsent: %v", err)
	}
	if prepares != 2 || execs != 1 {
		t.Fatalf("prepares %d, execs %d; want the statement prepared again on the new session and run once", prepares, execs)
	}
	if n := c.Stats().Retries; n != 1 {
		t.Errorf("Stats().Retries = %d, want 1", n)
	}
}
