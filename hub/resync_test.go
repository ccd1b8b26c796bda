package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/session"
)

// resyncBound is how soon a socket must see a change whose live copy its
// instance missed, with no later write to the session.
const resyncBound = 3 * time.Second

// expectUpTo waits until s has seen a change with seq at least want,
// within resyncBound.
func expectUpTo(t *testing.T, name string, s *sock, want uint64) {
	t.Helper()
	deadline := time.After(resyncBound)
	for {
		select {
		case m, ok := <-s.in:
			if !ok {
				t.Fatalf("%s: socket closed", name)
			}
			if m["type"] == "change" && uint64(num(m["seq"])) >= want {
				return
			}
		case <-deadline:
			t.Fatalf("%s: no change up to seq %d within %v", name, want, resyncBound)
		}
	}
}

// Live changes that nats.go drops as a slow consumer (a full dispatcher
// channel) reach the sockets without waiting for a later write: the
// slow-consumer error names the subscription, and its view catches up
// from JetStream.
func TestSlowConsumerDropsRepaired(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := newInstance(t, ns, func(o *hub.Options) { hub.SetLiveBuffer(o, 1) })
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b)
	id := sessionID(t, a.store, c.cookie(a))
	// A first write: the sockets of a session never written hold no view
	// (they are lazy); after it, both are in their instance's view.
	sa.set("colour", "red")
	sb.expect("change")

	// A's dispatcher waits on the session's view: of the writes below, one
	// is taken, one waits in the channel and the rest are dropped.
	release := hub.StallView(a.hub, id)
	in := a.nc.Stats().InMsgs
	const n = 20
	var last uint64
	for i := range n {
		seq, err := b.hub.Write(context.Background(), id, session.Op{Type: session.OpSet, Key: "note", Value: []byte(fmt.Sprintf(`"w%d"`, i))})
		if err != nil {
			release()
			t.Fatal(err)
		}
		last = seq
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.nc.Stats().InMsgs < in+n {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("A received %d of %d live changes", a.nc.Stats().InMsgs-in, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(a.nc.LastError(), nats.ErrSlowConsumer) {
		release()
		t.Fatal("no live change was dropped: the test does not test anything")
	}
	release()
	expectUpTo(t, "socket at A", sa, last)
	expectUpTo(t, "socket at B", sb, last)
}

// Changes written while an instance's NATS connection is down reach its
// sockets once it reconnects, without waiting for a later write.
func TestReconnectRepaired(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	p := newProxy(t, ns.Addr().String())
	nc, err := nats.Connect("nats://"+p.addr(), nats.Name(t.Name()), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a := newInstanceOn(t, nc, nil)
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b)
	id := sessionID(t, a.store, c.cookie(a))

	p.cut()
	deadline := time.Now().Add(10 * time.Second)
	for nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("A still connected")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var last uint64
	for i := range 5 {
		seq, err := b.hub.Write(context.Background(), id, session.Op{Type: session.OpSet, Key: "note", Value: []byte(fmt.Sprintf(`"d%d"`, i))})
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	expectUpTo(t, "socket at B", sb, last)
	p.resume()
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("A did not reconnect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	expectUpTo(t, "socket at A", sa, last)
}

// proxy forwards TCP connections to a NATS server; cut closes them and
// refuses new ones until resume; hold stops forwarding what the server
// sends (its PubAcks, its messages) until release, while what the client
// sends still goes through.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu      sync.Mutex
	refuse  bool
	conns   []net.Conn
	open    chan struct{} // closed while the server's bytes flow
	running sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, open: make(chan struct{})}
	close(p.open)
	p.running.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.running.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.running.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.refuse {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.running.Add(2)
		go func() { defer p.running.Done(); _, _ = io.Copy(s, c); s.Close() }()
		go func() { defer p.running.Done(); p.forward(c, s); c.Close() }()
	}
}

// forward copies what the server sends to the client, waiting while the
// proxy holds it.
func (p *proxy) forward(c, s net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			p.mu.Lock()
			open := p.open
			p.mu.Unlock()
			<-open
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold stops forwarding the server's bytes until release.
func (p *proxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// release forwards the server's bytes again, those held first.
func (p *proxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	p.refuse = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.release() // a held forward finds its connection closed
}

func (p *proxy) resume() {
	p.mu.Lock()
	p.refuse = false
	p.mu.Unlock()
}
