package hasql_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/hasqlgo/hasql/internal/testserver"
)

func TestZZProbe(t *testing.T) {
	p := testserver.StartPostgres(t)
	b := testserver.StartPgBouncer(t, p, testserver.PgBouncerOptions{DefaultPoolSize: 4})
	p.Exec("create database peer_x")
	db, _ := sql.Open("pgx", b.DSN("peer_x"))
	defer db.Close()
	for i := 0; i < 10; i++ {
		var one int
		if err := db.QueryRowContext(context.Background(), "select 1").Scan(&one); err != nil {
			t.Logf("query %d: %v", i, err)
		}
		out, err := b.Admin("KILL peer_x")
		t.Logf("kill: %q %v", out, err)
		out, err = b.Admin("RESUME peer_x")
		t.Logf("resume: %q %v", out, err)
	}
	t.Log(b.LogTail())
}
