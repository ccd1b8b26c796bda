package hub

import (
	"math/rand/v2"
	"testing"
	"time"
)

// tokens against a map and a list in publish order (what asyncAcks held
// before): every operation, in random order, finds the same publishes,
// and the ring narrows again once the window does.
func TestTokensAsAMap(t *testing.T) {
	var tk tokens
	held := map[uint64]*pubAck{}
	var order []*pubAck
	var last uint64
	base := time.Unix(0, 0)
	clock := 0 // deadlines: one nanosecond per publish
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 200000 {
		switch op := r.IntN(100); {
		case op < 50:
			f := &pubAck{deadline: base.Add(time.Duration(clock))}
			clock++
			tk.push(f)
			if f.token != last+1 {
				t.Fatalf("step %d: token %d after %d", step, f.token, last)
			}
			last = f.token
			held[f.token] = f
			order = append(order, f)
		case op < 97:
			// Mostly the oldest ones, as acknowledgements come; sometimes
			// any, or one never given or already taken.
			var token uint64
			switch k := r.IntN(10); {
			case k < 7 && len(order) > 0:
				token = order[r.IntN(min(len(order), 3))].token
			case k < 9 && last > 0:
				token = 1 + r.Uint64N(last)
			default:
				token = last + 1 + r.Uint64N(3)
			}
			got, want := tk.take(token), held[token]
			if got != want {
				t.Fatalf("step %d: take(%d) = %p, want %p", step, token, got, want)
			}
			delete(held, token)
		case op < 99:
			now := base.Add(time.Duration(clock - r.IntN(20)))
			due := tk.takeDue(now)
			var want []*pubAck
			for _, f := range order {
				if held[f.token] != f {
					continue
				}
				if now.Before(f.deadline) {
					break
				}
				want = append(want, f)
			}
			if len(due) != len(want) {
				t.Fatalf("step %d: takeDue found %d, want %d", step, len(due), len(want))
			}
			for i := range due {
				if due[i] != want[i] {
					t.Fatalf("step %d: takeDue[%d] = token %d, want %d", step, i, due[i].token, want[i].token)
				}
				delete(held, due[i].token)
			}
		default:
			all := tk.takeAll()
			if len(all) != len(held) {
				t.Fatalf("step %d: takeAll found %d, want %d", step, len(all), len(held))
			}
			for _, f := range all {
				if held[f.token] != f {
					t.Fatalf("step %d: takeAll returned token %d, not held", step, f.token)
				}
			}
			clear(held)
		}
		var kept []*pubAck
		for _, f := range order {
			if held[f.token] == f {
				kept = append(kept, f)
			}
		}
		order = kept
		if len(held) == 0 && tk.count != 0 {
			t.Fatalf("step %d: nothing held, window of %d", step, tk.count)
		}
		if len(order) > 0 && tk.first != order[0].token {
			t.Fatalf("step %d: window starts at %d, the oldest held is %d", step, tk.first, order[0].token)
		}
		if len(tk.ring) > minTokenRing && tk.count < len(tk.ring)/8 {
			t.Fatalf("step %d: ring of %d for a window of %d", step, len(tk.ring), tk.count)
		}
	}
}

// A publish awaiting its acknowledgement keeps the window open behind it
// (the ring grows); once it is answered, the window moves past every hole
// and the ring shrinks back.
func TestTokensWindowMovesPastHoles(t *testing.T) {
	var tk tokens
	stuck := &pubAck{}
	tk.push(stuck)
	for range 10000 {
		f := &pubAck{}
		tk.push(f)
		if tk.take(f.token) != f {
			t.Fatal("a publish not found by its token")
		}
	}
	if tk.count != 10001 || len(tk.ring) < 10001 {
		t.Fatalf("window %d in a ring of %d, want the 10001 tokens since the one awaiting", tk.count, len(tk.ring))
	}
	if tk.take(stuck.token) != stuck {
		t.Fatal("the oldest publish not found")
	}
	if tk.count != 0 || len(tk.ring) > minTokenRing {
		t.Fatalf("window %d in a ring of %d once every publish is answered, want 0 in at most %d", tk.count, len(tk.ring), minTokenRing)
	}
	f := &pubAck{}
	tk.push(f)
	if f.token != 10002 {
		t.Fatalf("next token %d, want 10002", f.token)
	}
}

// Finding a publish by its token, as route does for each acknowledgement.
func BenchmarkTokens(b *testing.B) {
	b.Run("ring", func(b *testing.B) {
		var tk tokens
		fs := make([]pubAck, 64)
		for i := range 32 {
			tk.push(&fs[i])
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			f := &fs[(i+32)%64]
			tk.push(f)
			if tk.take(f.token-32) == nil {
				b.Fatal("not found")
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		waiting := map[uint64]*pubAck{}
		var order []*pubAck
		fs := make([]pubAck, 64)
		var n uint64
		for i := range 32 {
			n++
			fs[i].token = n
			waiting[n] = &fs[i]
			order = append(order, &fs[i])
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			f := &fs[(i+32)%64]
			n++
			f.token = n
			waiting[n] = f
			order = append(order, f)
			g := waiting[n-32]
			delete(waiting, n-32)
			if g == nil {
				b.Fatal("not found")
			}
			if order[0] == g {
				order[0] = nil
				order = order[1:]
			}
		}
	})
}
