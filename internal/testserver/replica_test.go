package testserver

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMariaDBReplication: a write on the primary reaches the replica by GTID, the replica refuses
// the app user's writes, and a stopped SQL thread leaves the replica behind until it starts again.
func TestMariaDBReplication(t *testing.T) {
	r := StartMariaDBReplication(t)
	db := r.FreshDB(t)
	if err := r.Primary.ExecIn(db, "CREATE TABLE kv (k INT PRIMARY KEY, v INT); INSERT INTO kv VALUES (1, 7)"); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	wantQuery(t, func(q string) (string, error) { return r.Replica.QueryIn(db, q) }, "SELECT v FROM kv WHERE k = 1", "7")
	wantQuery(t, r.Replica.Query, "SELECT @@global.read_only", "1")
	pos, _ := r.Primary.Query("SELECT @@gtid_binlog_pos")
	if !strings.HasPrefix(pos, "0-1-") {
		t.Fatalf("primary GTID position %q, want 0-1-n", pos)
	}
	// The app user cannot write on the replica (root could: READ_ONLY ADMIN).
	out, err := run(t.Context(), cmdTimeout, "", "", append(toolEnv(), "MYSQL_PWD=app"), r.Replica.client,
		"--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", strconv.Itoa(r.Replica.Port), "-u", "app", "-D", db,
		"-e", "UPDATE kv SET v = 8")
	if err == nil || !strings.Contains(out+err.Error(), "1290") {
		t.Fatalf("app's write on the replica: %v %s, want ERROR 1290", err, out)
	}
	if err := r.Replica.Exec("STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	if err := r.Primary.ExecIn(db, "UPDATE kv SET v = 9"); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitCaughtUp(300 * time.Millisecond); err == nil {
		t.Fatal("the replica caught up with its SQL thread stopped")
	}
	if err := r.Replica.Exec("START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitCaughtUp(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	wantQuery(t, func(q string) (string, error) { return r.Replica.QueryIn(db, q) }, "SELECT v FROM kv WHERE k = 1", "9")
}
