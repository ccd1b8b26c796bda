package loadtest

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/google/pprof/profile"
)

// CPUSplit is a process's CPU per write told apart, by its CPU profile over
// the shape, between its own code and the nats-server it embeds: the hub
// or the bare relay running its nats-server in its process
// (PeerConfig.NATS embedded), where /proc sees one process. A sample is the
// nats-server's when a frame of its stack is in the nats-server module,
// the process's own when another frame is outside the Go runtime; the
// rest (the scheduler, the garbage collector's workers) serves both and is
// shared in proportion.
type CPUSplit struct {
	// Samples is the profile's samples (its "samples" values; a profile
	// without them counts its stacks): its resolution (at 100 a second, a
	// share is known within about 1/sqrt(Samples)).
	Samples int64 `json:"samples"`
	// NATSShare is the nats-server's share of the samples told apart.
	NATSShare float64 `json:"nats_server_share"`
	// OwnPerOpUS and NATSPerOpUS are the process's CPU per write (/proc,
	// over the shape) split by NATSShare. Only the profile's shares are
	// used: it covers the shape's writing time rounded to whole seconds,
	// at least one (pprof takes whole seconds), where /proc covers the
	// writing and the drain after it.
	OwnPerOpUS  float64 `json:"own_cpu_per_op_us"`
	NATSPerOpUS float64 `json:"nats_server_cpu_per_op_us"`
}

// natsServerModule prefixes every function of the embedded nats-server.
const natsServerModule = "github.com/nats-io/nats-server/"

// splitProfile splits perOpUS, a process's CPU per write over a shape, by
// the process's CPU profile over the shape (pprof's format, as
// net/http/pprof serves it).
func splitProfile(data []byte, perOpUS float64) (*CPUSplit, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		return nil, fmt.Errorf("loadtest: not a CPU profile (%d sample types)", len(p.SampleType))
	}
	var nats, own, samples int64
	for _, s := range p.Sample {
		if len(p.SampleType) > 1 && p.SampleType[0].Type == "samples" {
			samples += s.Value[0]
		} else {
			samples++
		}
		switch sampleOwner(s) {
		case ownerNATS:
			nats += s.Value[vi]
		case ownerOwn:
			own += s.Value[vi]
		}
	}
	if nats+own == 0 {
		return nil, fmt.Errorf("loadtest: the profile has no sample to tell apart (%d samples)", samples)
	}
	share := float64(nats) / float64(nats+own)
	return &CPUSplit{Samples: samples, NATSShare: share, OwnPerOpUS: perOpUS * (1 - share), NATSPerOpUS: perOpUS * share}, nil
}

type owner uint8

const (
	ownerShared owner = iota // the Go runtime alone: serves both
	ownerOwn
	ownerNATS
)

// sampleOwner tells whose work sample s is (CPUSplit).
func sampleOwner(s *profile.Sample) owner {
	o := ownerShared
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function == nil {
				continue
			}
			switch name := l.Function.Name; {
			case strings.HasPrefix(name, natsServerModule):
				return ownerNATS
			case !runtimeFunc(name):
				o = ownerOwn
			}
		}
	}
	return o
}

// runtimeFunc reports whether name is a function of the Go runtime.
func runtimeFunc(name string) bool {
	return strings.HasPrefix(name, "runtime.") || strings.HasPrefix(name, "internal/runtime/")
}
