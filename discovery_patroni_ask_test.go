package hasql

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestPatroniAskedAllAtOnce: a refresh asks every known REST API at once: a member whose REST API
// swallows the request (a host that is down) does not hold up the answer of another, the first
// answer naming a usable leader is taken, and the hanging request is cancelled.
func TestPatroniAskedAllAtOnce(t *testing.T) {
	var hungEnded atomic.Bool
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		hungEnded.Store(true)
	}))
	defer hang.Close()
	cluster := func(leaderState string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"members":[{"name":"a","role":"leader","state":%q,"host":"127.0.0.1","port":1001},`+
				`{"name":"b","role":"replica","state":"running","host":"127.0.0.1","port":1002}]}`, leaderState)
		}))
	}
	stale, good := cluster("stopped"), cluster("running")
	defer stale.Close()
	defer good.Close()
	hc := &http.Client{Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ms, err := askPatroni(ctx, hc, []string{hang.URL, stale.URL, good.URL})
	if err != nil {
		t.Fatal(err)
	}
	if hungEnded.Load() {
		t.Fatal("the answer waited for the REST API that does not answer")
	}
	if len(ms) != 2 || !ms[0].usable || ms[0].role != rolePrimary {
		t.Fatalf("members %+v, want the answer naming a usable leader", ms)
	}
	// No answer names a usable leader: the first answer in order, once all are in.
	ms, err = askPatroni(ctx, hc, []string{stale.URL, "http://127.0.0.1:1"})
	if err != nil || len(ms) != 2 || ms[0].usable {
		t.Fatalf("without a usable leader: %+v %v, want the stale answer", ms, err)
	}
	// The hanging request was cancelled when the first call returned.
	deadline := time.Now().Add(30 * time.Second)
	for !hungEnded.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !hungEnded.Load() {
		t.Fatal("the request to the REST API that does not answer was not cancelled")
	}
}
