package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/hub"
)

// ClusterConfig is the NATS cluster scenario: several nats-server
// processes clustered over routes, the stream replicated, and the faults
// a cluster survives.
type ClusterConfig struct {
	// Nodes is how many nats-server processes the run starts, clustered
	// over routes on 127.0.0.1, each with its own store; every hub
	// instance is given all their URLs. 0 or 1: one server, no cluster.
	Nodes int
	// Replicas of the stream. Default: 3 with a cluster of 3 or more, else
	// the node count.
	Replicas int
	// KillLeader SIGKILLs the nats-server leading the stream (found from
	// the stream info) at this point of the load and restarts it on its
	// store after Pause. 0: never.
	KillLeader time.Duration
	// PauseFollower stops a follower of the stream with SIGSTOP at this
	// point and continues it (SIGCONT) after Pause. 0: never.
	PauseFollower time.Duration
	// RestartAll SIGKILLs every nats-server at once at this point and
	// restarts them all after Pause (the whole cluster down). 0: never.
	RestartAll time.Duration
	// Pause is how long a killed node stays down and a paused one
	// stopped. Default: 2s.
	Pause time.Duration
	// CompareR1, when set, first runs the same load for this long on a
	// fresh cluster with the stream at R1 and no faults, and reports the
	// run's ops/s against it.
	CompareR1 time.Duration
}

func (cc *ClusterConfig) addFlags(fs *flag.FlagSet) {
	fs.IntVar(&cc.Nodes, "nats-cluster", cc.Nodes, "start this many nats-server processes clustered over routes, each with its own store (0: one server)")
	fs.IntVar(&cc.Replicas, "replicas", cc.Replicas, "replicas of the hub's stream (0: 3 on a cluster of 3 or more, else the node count)")
	fs.DurationVar(&cc.KillLeader, "kill-nats-leader", cc.KillLeader, "SIGKILL the stream's leader at this point of the load and restart it on its store after -nats-pause (0: never)")
	fs.DurationVar(&cc.PauseFollower, "pause-nats", cc.PauseFollower, "SIGSTOP a follower of the stream at this point and SIGCONT it after -nats-pause (0: never)")
	fs.DurationVar(&cc.RestartAll, "restart-all", cc.RestartAll, "SIGKILL every nats-server at this point and restart them all after -nats-pause (0: never)")
	fs.DurationVar(&cc.Pause, "nats-pause", cc.Pause, "how long a killed nats-server stays down and a paused one stopped")
	fs.DurationVar(&cc.CompareR1, "compare-r1", cc.CompareR1, "first run the same load this long at R1 on a fresh cluster, without faults, for the R3/R1 ratio (0: skip)")
}

func (c *Config) validateCluster() error {
	cc := &c.Cluster
	var errs []error
	faults := cc.KillLeader > 0 || cc.PauseFollower > 0 || cc.RestartAll > 0
	if len(c.URLs) > 0 && (cc.Nodes > 1 || faults) {
		errs = append(errs, errors.New("-nats-cluster and the NATS faults need the servers the run starts (no -urls)"))
	}
	if cc.Nodes < 0 || cc.Nodes > 9 {
		errs = append(errs, fmt.Errorf("-nats-cluster %d: 0 to 9", cc.Nodes))
	}
	if cc.Replicas < 0 || cc.Replicas > max(1, cc.Nodes) {
		errs = append(errs, fmt.Errorf("-replicas %d: at most the node count", cc.Replicas))
	}
	if (cc.KillLeader > 0 || cc.PauseFollower > 0) && cc.Nodes < 3 {
		errs = append(errs, errors.New("-kill-nats-leader and -pause-nats need -nats-cluster 3 or more (a quorum must survive)"))
	}
	if c.RestartNATS > 0 && cc.Nodes > 1 {
		errs = append(errs, errors.New("-restart-nats is for one server; on a cluster use -kill-nats-leader or -restart-all"))
	}
	if cc.CompareR1 > 0 && cc.Nodes < 2 {
		errs = append(errs, errors.New("-compare-r1 needs -nats-cluster"))
	}
	if cc.Pause <= 0 {
		cc.Pause = 2 * time.Second
	}
	return errors.Join(errs...)
}

// replicas is the stream's replica count for the run.
func (cc *ClusterConfig) replicas() int {
	switch {
	case cc.Replicas > 0:
		return cc.Replicas
	case cc.Nodes >= 3:
		return 3
	}
	return max(1, cc.Nodes)
}

// natsNode is one nats-server process of a cluster.
type natsNode struct {
	name string
	url  string
	proc *proc
}

// startCluster starts cfg.Cluster.Nodes nats-server processes routed to
// each other and waits until every one answers JetStream requests.
func (t *topology) startCluster(natsBin string) error {
	n := t.cfg.Cluster.Nodes
	ports := make([]int, n)
	cports := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		var err error
		if ports[i], err = freePort(); err != nil {
			return err
		}
		if cports[i], err = freePort(); err != nil {
			return err
		}
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", cports[i])
	}
	conf, err := natsConf(t.dir, t.cfg.Durability)
	if err != nil {
		return err
	}
	urls := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		argv := []string{natsBin, "-js", "-sd", filepath.Join(t.dir, "nats-"+name), "-a", "127.0.0.1", "-p", strconv.Itoa(ports[i]),
			"-n", name, "--cluster_name", "loadtest", "--cluster", routes[i], "--routes", strings.Join(routes, ",")}
		if conf != "" {
			argv = append(argv, "-c", conf)
		}
		node := &natsNode{name: name, url: fmt.Sprintf("nats://127.0.0.1:%d", ports[i]),
			proc: &proc{name: "nats-server " + name, argv: argv, logPath: filepath.Join(t.dir, "nats-"+name+".log")}}
		t.nodes = append(t.nodes, node)
		urls[i] = node.url
		if err := node.proc.start(); err != nil {
			return err
		}
	}
	t.natsURL = strings.Join(urls, ",")
	for _, node := range t.nodes {
		if err := t.waitNode(node, 60*time.Second); err != nil {
			return err
		}
	}
	return t.waitPlacement(t.cfg.Cluster.replicas(), 60*time.Second)
}

// waitPlacement waits until the cluster can place a stream of replicas
// (every peer known to the meta leader): a probe stream is created and
// deleted, so that the hubs' stream creation does not meet "no suitable
// peers".
func (t *topology) waitPlacement(replicas int, timeout time.Duration) error {
	nc, js, err := connectJetStream(t.natsURL, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LOADTEST_PROBE", Subjects: []string{"loadtest.probe"},
			Replicas: replicas, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "LOADTEST_PROBE")
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster cannot place a stream at R%d: %w", replicas, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitNode waits until node answers JetStream requests (the cluster has
// a meta leader).
func (t *topology) waitNode(node *natsNode, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := pingJetStream(node.url)
		if err == nil {
			return nil
		}
		if isDone(node.proc.done) || time.Now().After(deadline) {
			return fmt.Errorf("%s not ready: %v; its log: %s\n%s", node.proc.name, err, node.proc.logPath, tail(node.proc.logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamPeers returns the node leading the hub's stream and its
// followers, from the stream info.
func (t *topology) streamPeers(ctx context.Context) (leader *natsNode, followers []*natsNode, err error) {
	nc, js, err := connectJetStream(t.natsURL, nats.Timeout(2*time.Second))
	if err != nil {
		return nil, nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, hub.DefaultStream)
	if err != nil {
		return nil, nil, err
	}
	ci := st.CachedInfo().Cluster
	if ci == nil || ci.Leader == "" {
		return nil, nil, errors.New("the stream has no leader")
	}
	byName := map[string]*natsNode{}
	for _, n := range t.nodes {
		byName[n.name] = n
	}
	leader = byName[ci.Leader]
	if leader == nil {
		return nil, nil, fmt.Errorf("stream leader %q is not a node of the run", ci.Leader)
	}
	for _, r := range ci.Replicas {
		if f := byName[r.Name]; f != nil {
			followers = append(followers, f)
		}
	}
	return leader, followers, nil
}

// killNode SIGKILLs node, waits pause and starts it again on its store.
func (t *topology) killNode(node *natsNode, pause time.Duration) error {
	if err := node.proc.kill(); err != nil {
		return err
	}
	time.Sleep(pause)
	if err := node.proc.start(); err != nil {
		return err
	}
	return t.waitNode(node, 60*time.Second)
}

// pauseNode stops node with SIGSTOP for pause, then continues it.
func (t *topology) pauseNode(node *natsNode, pause time.Duration) error {
	pid := node.proc.pid()
	if pid == 0 {
		return fmt.Errorf("%s is not running", node.proc.name)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	time.Sleep(pause)
	return syscall.Kill(pid, syscall.SIGCONT)
}

// restartAll SIGKILLs every node, waits pause and starts them all again.
func (t *topology) restartAll(pause time.Duration) error {
	for _, n := range t.nodes {
		if err := n.proc.kill(); err != nil {
			return err
		}
	}
	time.Sleep(pause)
	for _, n := range t.nodes {
		if err := n.proc.start(); err != nil {
			return err
		}
	}
	for _, n := range t.nodes {
		if err := t.waitNode(n, 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}
