package loadtest

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// cpuProfile builds a CPU profile in pprof's format, as net/http/pprof
// serves it: one sample per stack, its leaf first, worth ms milliseconds.
func cpuProfile(t *testing.T, sampleType string, stacks map[string]int64) []byte {
	t.Helper()
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: sampleType, Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	locs := map[string]*profile.Location{}
	loc := func(name string) *profile.Location {
		if l, ok := locs[name]; ok {
			return l
		}
		fn := &profile.Function{ID: uint64(len(p.Function) + 1), Name: name}
		p.Function = append(p.Function, fn)
		l := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: fn}}}
		p.Location = append(p.Location, l)
		locs[name] = l
		return l
	}
	for stack, ms := range stacks {
		s := &profile.Sample{Value: []int64{ms / 10, ms * 1_000_000}}
		for _, name := range strings.Split(stack, ";") {
			s.Location = append(s.Location, loc(name))
		}
		p.Sample = append(p.Sample, s)
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A process's CPU per write splits by its profile: a stack through the
// nats-server module is the nats-server's (even when the process's own
// code is on it too), one through any other code is the process's own
// (the NATS client library included), and the runtime's alone is shared
// in proportion.
func TestSplitProfile(t *testing.T) {
	data := cpuProfile(t, "cpu", map[string]int64{
		"github.com/nats-io/nats-server/v2/server.(*client).readLoop;runtime.goexit":                                                 200,
		"runtime.memmove;github.com/nats-io/nats-server/v2/server.(*stream).processInboundJetStreamMsg;runtime.goexit":               60,
		"github.com/nats-io/nats-server/v2/server.(*client).deliverMsg;github.com/sessionhub/sessionhub/hub.(*Hub).publish":          40,
		"syscall.Syscall;github.com/coder/websocket.(*Conn).Write;github.com/sessionhub/sessionhub/hub.(*conn).drain;runtime.goexit": 400,
		"github.com/nats-io/nats.go.(*Conn).processMsg;runtime.goexit":                                                               200,
		"runtime.gcBgMarkWorker;runtime.goexit":                                                                                      100,
		"runtime.findRunnable;runtime.schedule;runtime.mcall":                                                                        100,
		"internal/runtime/syscall.Syscall6;runtime.netpoll;runtime.findRunnable":                                                     50,
	})
	s, err := splitProfile(data, 45)
	if err != nil {
		t.Fatal(err)
	}
	// nats-server 300 ms, own 600 ms: a third of 45 µs.
	if s.Samples != 115 || math.Abs(s.NATSShare-1.0/3) > 1e-9 || math.Abs(s.OwnPerOpUS-30) > 1e-9 || math.Abs(s.NATSPerOpUS-15) > 1e-9 {
		t.Errorf("split %+v, want 115 samples, a third nats-server: 30 + 15 µs", s)
	}

	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"not a profile", []byte("a profile"), ""},
		{"not a CPU profile", cpuProfile(t, "alloc_space", map[string]int64{"github.com/sessionhub/sessionhub/hub.New": 10}), "not a CPU profile"},
		{"the runtime alone", cpuProfile(t, "cpu", map[string]int64{"runtime.gcBgMarkWorker;runtime.goexit": 100}), "no sample to tell apart (10 samples)"},
	} {
		if s, err := splitProfile(c.data, 45); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %+v, %v", c.name, s, err)
		}
	}
}
