package hasql_test

// faultProxy: a small in-process TCP proxy on 127.0.0.1 that sits between a
// client and a database server and injects network faults, for the
// lost-connection, outage and chaos tests. It counts the TCP connections it
// accepts, which is how the tests count connect attempts.
//
// Modes (SetMode), applied to every connection, old and new:
//
//	fpPass       forward both ways (the default)
//	fpRefuse     new connections are closed at once, before any byte (a server
//	             that is down behind a listening port); existing ones go on
//	fpBlackhole  new connections are accepted and never answered; on existing
//	             ones nothing is forwarded any more (bytes wait, as on a
//	             partitioned network) until the mode changes
//
// With PGAware set, the proxy reads the first eight bytes of each connection
// (PostgreSQL clients speak first) and does not count a CancelRequest as a
// connect attempt: pgx sends one on a new connection after every failed
// connect, which would otherwise double the count.
//
// Cut(pattern, after, n) arms a cut of the next n connections whose client
// sends a chunk containing pattern (ASCII case ignored: "commit" matches
// COMMIT as pgx and go-sql-driver/mysql send it). With after, the client's
// side is reset first, so that no answer reaches it, then the chunk is
// forwarded and the server's side closed once the server had 50 ms to act
// on it: the server runs the work, the client never hears (used to lose a
// session exactly after COMMIT reached the server). Otherwise the chunk is
// dropped and the connection reset: the server never sees it. The cut it
// returns counts the cuts made (Made, Fired) and Stop disarms it; a new Cut
// replaces the armed one.
//
// Independent knobs: SetLatency delays every forwarded chunk, SetSliced writes
// every chunk one byte at a time (split packets), ResetAll ends every open
// connection with a TCP reset on the client's side and a close on the
// server's side. Close stops the proxy and waits for all its goroutines.
// Standard library only.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fpMode int32

const (
	fpPass fpMode = iota
	fpRefuse
	fpBlackhole
)

type faultProxy struct {
	ln       net.Listener
	upstream string

	mode     atomic.Int32
	latency  atomic.Int64 // nanoseconds per forwarded chunk
	sliced   atomic.Bool
	accepted atomic.Int64 // TCP connections accepted (less cancel requests when PGAware)
	cancels  atomic.Int64 // PostgreSQL cancel requests seen (PGAware)
	resets   atomic.Int64 // connections ended by ResetAll
	pgAware  atomic.Bool
	cut      atomic.Pointer[fpCut]

	mu     sync.Mutex
	conns  map[*fpPair]struct{}
	closed bool
	wake   chan struct{} // closed and replaced whenever the mode changes
	wg     sync.WaitGroup
}

// fpCut is an armed Cut.
type fpCut struct {
	pattern []byte // lower case
	after   bool
	left    atomic.Int64 // cuts left to make
	made    atomic.Int64
}

// Cut arms a cut of the next n connections whose client sends a chunk
// containing pattern (see the file comment) and returns it.
func (fp *faultProxy) Cut(pattern string, after bool, n int) *fpCut {
	c := &fpCut{pattern: bytes.ToLower([]byte(pattern)), after: after}
	c.left.Store(int64(n))
	fp.cut.Store(c)
	return c
}

// Made is the number of connections the cut ended.
func (c *fpCut) Made() int64 { return c.made.Load() }

// Fired reports whether the cut ended a connection.
func (c *fpCut) Fired() bool { return c.Made() > 0 }

// Stop disarms the cut: it ends no more connections.
func (c *fpCut) Stop() { c.left.Store(0) }

// take reports whether a matching chunk is to be cut, counting the cut.
func (c *fpCut) take() bool {
	if c.left.Add(-1) < 0 {
		return false
	}
	c.made.Add(1)
	return true
}

// fpContainsFold reports whether b contains the lower-case pattern, ASCII
// letters of b compared in lower case.
func fpContainsFold(b, pattern []byte) bool {
	for i := 0; i+len(pattern) <= len(b); i++ {
		j := 0
		for j < len(pattern) && fpLower(b[i+j]) == pattern[j] {
			j++
		}
		if j == len(pattern) {
			return true
		}
	}
	return false
}

func fpLower(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// fpPair is one proxied connection: the client's side and the server's.
type fpPair struct {
	client net.Conn
	once   sync.Once

	mu     sync.Mutex
	server net.Conn // the upstream side once dialled; guarded by mu
	closed bool     // guarded by mu: a server dialled after close is closed at once
}

// close ends both sides; rst makes the client see a reset rather than a FIN.
func (p *fpPair) close(rst bool) {
	p.once.Do(func() {
		if tc, ok := p.client.(*net.TCPConn); ok && rst {
			_ = tc.SetLinger(0)
		}
		p.client.Close()
		p.mu.Lock()
		p.closed = true
		s := p.server
		p.mu.Unlock()
		if s != nil {
			s.Close()
		}
	})
}

// setServer records the upstream side; false (and s closed) when the pair
// was closed while s was being dialled.
func (p *fpPair) setServer(s net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		s.Close()
		return false
	}
	p.server = s
	return true
}

// newFaultProxy starts a proxy to upstream (host:port) on a free loopback
// port; it is closed when the test ends, if the test did not close it.
func newFaultProxy(t testing.TB, upstream string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	fp := &faultProxy{ln: ln, upstream: upstream, conns: map[*fpPair]struct{}{}, wake: make(chan struct{})}
	fp.wg.Add(1)
	go fp.acceptLoop()
	t.Cleanup(fp.Close)
	return fp
}

// Addr is the proxy's host:port.
func (fp *faultProxy) Addr() string { return fp.ln.Addr().String() }

// Port is the proxy's port.
func (fp *faultProxy) Port() int {
	_, p, _ := net.SplitHostPort(fp.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// Accepted is how many TCP connections the proxy has accepted so far (with
// PGAware, less PostgreSQL cancel requests).
func (fp *faultProxy) Accepted() int64 { return fp.accepted.Load() }

// PGAware makes the proxy tell PostgreSQL cancel requests from connect
// attempts (see the file comment).
func (fp *faultProxy) PGAware() *faultProxy { fp.pgAware.Store(true); return fp }

// Open is how many proxied connections are open now.
func (fp *faultProxy) Open() int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return len(fp.conns)
}

// SetMode switches the proxy's mode for new and existing connections.
func (fp *faultProxy) SetMode(m fpMode) {
	fp.mode.Store(int32(m))
	fp.mu.Lock()
	close(fp.wake)
	fp.wake = make(chan struct{})
	fp.mu.Unlock()
}

// SetLatency delays every forwarded chunk by d (both directions).
func (fp *faultProxy) SetLatency(d time.Duration) { fp.latency.Store(int64(d)) }

// SetSliced makes the proxy write every chunk one byte at a time.
func (fp *faultProxy) SetSliced(on bool) { fp.sliced.Store(on) }

// ResetAll ends every open connection: the client gets a TCP reset.
func (fp *faultProxy) ResetAll() int {
	fp.mu.Lock()
	pairs := make([]*fpPair, 0, len(fp.conns))
	for p := range fp.conns {
		pairs = append(pairs, p)
	}
	fp.mu.Unlock()
	for _, p := range pairs {
		p.close(true)
	}
	fp.resets.Add(int64(len(pairs)))
	return len(pairs)
}

// Close stops accepting, ends every connection and waits for every goroutine
// of the proxy. It is safe to call more than once.
func (fp *faultProxy) Close() {
	fp.mu.Lock()
	if fp.closed {
		fp.mu.Unlock()
		return
	}
	fp.closed = true
	close(fp.wake)
	fp.mu.Unlock()
	fp.ln.Close()
	fp.ResetAll()
	fp.wg.Wait()
}

func (fp *faultProxy) acceptLoop() {
	defer fp.wg.Done()
	for {
		c, err := fp.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if !fp.pgAware.Load() {
			fp.accepted.Add(1)
		}
		p := &fpPair{client: c}
		fp.mu.Lock()
		if fp.closed {
			fp.mu.Unlock()
			c.Close()
			return
		}
		fp.conns[p] = struct{}{}
		fp.wg.Add(1)
		fp.mu.Unlock()
		go fp.serve(p)
	}
}

// serve runs one connection until either side ends or the proxy resets it.
func (fp *faultProxy) serve(p *fpPair) {
	defer fp.wg.Done()
	defer func() {
		p.close(false)
		fp.mu.Lock()
		delete(fp.conns, p)
		fp.mu.Unlock()
	}()
	var first []byte
	if fp.pgAware.Load() {
		// Length and code of the first message: 16 and 80877102 for a
		// CancelRequest.
		first = make([]byte, 8)
		_ = p.client.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _ := io.ReadFull(p.client, first)
		_ = p.client.SetReadDeadline(time.Time{})
		first = first[:n]
		if n == 8 && binary.BigEndian.Uint32(first) == 16 && binary.BigEndian.Uint32(first[4:]) == 80877102 {
			fp.cancels.Add(1)
		} else {
			fp.accepted.Add(1)
		}
	}
	switch fpMode(fp.mode.Load()) {
	case fpRefuse:
		// Like a server whose listener is up but which ends every new
		// connection at once.
		return
	case fpBlackhole:
		// Accept and never answer: wait for the mode to change or the
		// client to give up. Bytes the client sends meanwhile are read and
		// dropped (they would sit in a socket buffer on a real network,
		// and the session is never usable anyway).
		go func() { _, _ = io.Copy(io.Discard, p.client) }() // ends when p closes
		for fpMode(fp.mode.Load()) == fpBlackhole {
			if !fp.waitChange() {
				return
			}
		}
		return // a black-holed connection never becomes a session
	}
	s, err := net.DialTimeout("tcp", fp.upstream, 2*time.Second)
	if err != nil {
		return // upstream down: the client sees its connection closed
	}
	if !p.setServer(s) {
		return // reset while dialling
	}
	if len(first) > 0 {
		if _, err := s.Write(first); err != nil {
			return
		}
	}
	done := make(chan struct{}, 2)
	fp.wg.Add(2)
	go fp.pump(p, p.client, s, done)
	go fp.pump(p, s, p.client, done)
	<-done // one direction ended: end both
	p.close(false)
	<-done
}

// waitChange blocks until the mode changes or the proxy closes; false when
// the proxy closed.
func (fp *faultProxy) waitChange() bool {
	fp.mu.Lock()
	w, closed := fp.wake, fp.closed
	fp.mu.Unlock()
	if closed {
		return false
	}
	<-w
	fp.mu.Lock()
	closed = fp.closed
	fp.mu.Unlock()
	return !closed
}

// pump forwards src to dst chunk by chunk, applying the proxy's faults.
func (fp *faultProxy) pump(p *fpPair, src, dst net.Conn, done chan<- struct{}) {
	defer fp.wg.Done()
	defer func() { done <- struct{}{} }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for fpMode(fp.mode.Load()) == fpBlackhole {
				if !fp.waitChange() {
					return
				}
			}
			if d := time.Duration(fp.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if c := fp.cut.Load(); c != nil && src == p.client && fpContainsFold(buf[:n], c.pattern) && c.take() {
				if !c.after {
					p.close(true) // the chunk never reaches the server
					return
				}
				// The client's side goes first, so that no answer reaches
				// it; then the server gets the chunk and time to act on it.
				if tc, ok := p.client.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				_ = p.client.Close()
				_, _ = dst.Write(buf[:n])
				time.Sleep(50 * time.Millisecond)
				p.close(true)
				return
			}
			if fp.sliced.Load() {
				for i := 0; i < n; i++ {
					if _, werr := dst.Write(buf[i : i+1]); werr != nil {
						return
					}
				}
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestFaultProxySelf checks the proxy on a plain echo server: pass, sliced,
// latency, reset, refuse and black-hole, and that Close leaves no goroutine.
func TestFaultProxySelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ewg sync.WaitGroup
	ewg.Add(1)
	go func() {
		defer ewg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ewg.Add(1)
			go func() { defer ewg.Done(); _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	defer func() { ln.Close(); ewg.Wait() }()

	fp := newFaultProxy(t, ln.Addr().String())
	echo := func(c net.Conn, msg string) error {
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if string(got) != msg {
			return errors.New("echo mismatch: " + string(got))
		}
		return nil
	}
	c, err := net.Dial("tcp", fp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(c, "hello"); err != nil {
		t.Fatalf("pass: %v", err)
	}
	fp.SetSliced(true)
	if err := echo(c, "sliced packets"); err != nil {
		t.Fatalf("sliced: %v", err)
	}
	fp.SetSliced(false)
	fp.SetLatency(100 * time.Millisecond)
	start := time.Now()
	if err := echo(c, "slow"); err != nil {
		t.Fatalf("latency: %v", err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("latency: round trip took %v, want >= 200ms (100ms each way)", el)
	}
	fp.SetLatency(0)
	if n := fp.ResetAll(); n != 1 {
		t.Fatalf("ResetAll ended %d connections, want 1", n)
	}
	if err := echo(c, "after reset"); err == nil {
		t.Fatal("echo worked on a reset connection")
	}
	c.Close()

	// Cut: the next n connections sending the pattern (any case) end;
	// other chunks pass, and the cut stops after n or at Stop.
	for _, after := range []bool{false, true} {
		cut := fp.Cut("commit", after, 2)
		for i := 0; i < 3; i++ {
			c, err := net.Dial("tcp", fp.Addr())
			if err != nil {
				t.Fatal(err)
			}
			if err := echo(c, "begin"); err != nil {
				t.Fatalf("cut (after %v): a chunk without the pattern: %v", after, err)
			}
			err = echo(c, "x Commit y")
			c.Close()
			if (i < 2) != (err != nil) {
				t.Fatalf("cut (after %v), connection %d: echo error %v", after, i, err)
			}
		}
		if cut.Made() != 2 || !cut.Fired() {
			t.Fatalf("cut (after %v): Made %d, want 2", after, cut.Made())
		}
		cut = fp.Cut("commit", after, 5)
		cut.Stop()
		c, err := net.Dial("tcp", fp.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if err := echo(c, "COMMIT"); err != nil || cut.Fired() {
			t.Fatalf("a stopped cut: echo %v, fired %v", err, cut.Fired())
		}
		c.Close()
	}

	fp.SetMode(fpRefuse)
	c, err = net.Dial("tcp", fp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(c, "x"); err == nil {
		t.Fatal("refuse mode: echo worked")
	}
	c.Close()

	fp.SetMode(fpBlackhole)
	c, err = net.Dial("tcp", fp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("x"))
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !fpIsTimeout(err) {
		t.Fatalf("black-hole: read returned %v, want a timeout", err)
	}
	c.Close()
	fp.SetMode(fpPass)
	if got := fp.Accepted(); got != 11 { // 1 + 8 for the cuts + 2
		t.Fatalf("Accepted() = %d, want 11", got)
	}
	fp.Close()
	if fp.Open() != 0 {
		t.Fatalf("%d connections open after Close", fp.Open())
	}
}

// fpIsTimeout reports whether err is a network timeout.
func fpIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
