// Package natscluster starts a NATS cluster of embedded nats-servers in
// one process, for tests of replicated streams (R3) and of a node failing.
package natscluster

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sessionhub/sessionhub/hub/natsserver"
)

// ClusterName is the name of the clusters Start forms.
const ClusterName = "sessionhub-test"

// Cluster is n embedded nats-servers with JetStream forming one NATS
// cluster in this process (tests of replicated streams).
type Cluster struct {
	nodes []*natsserver.Server
}

// Start starts n servers with JetStream, each storing under
// dir/node<i>, listening for clients and routes on 127.0.0.1 random
// ports, routed to each other. It returns once every node accepts
// connections and the JetStream meta leader is elected (30s at most).
func Start(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("natscluster: cluster needs at least one node")
	}
	// Routes need known addresses: pick free ports up front.
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("natscluster: %w", err)
		}
		ports[i] = p
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		opts := &server.Options{
			ServerName: fmt.Sprintf("sessionhub-%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("node%d", i)),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: ClusterName,
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("natscluster: node %d: %w", i, err)
		}
		s.Start()
		c.nodes = append(c.nodes, &natsserver.Server{Server: s})
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, s := range c.nodes {
		if !s.ReadyForConnections(time.Until(deadline)) {
			c.Close()
			return nil, fmt.Errorf("natscluster: node %d not ready", i)
		}
	}
	for !c.hasMetaLeader() {
		if time.Now().After(deadline) {
			c.Close()
			return nil, errors.New("natscluster: no JetStream meta leader within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c, nil
}

// hasMetaLeader reports whether every running node is clustered and one
// of them is the JetStream meta leader.
func (c *Cluster) hasMetaLeader() bool {
	leader := false
	for _, s := range c.nodes {
		if !s.Running() {
			continue
		}
		if !s.JetStreamIsClustered() {
			return false
		}
		if s.JetStreamIsLeader() {
			leader = true
		}
	}
	return leader
}

// freePort returns a 127.0.0.1 TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URLs returns the client URLs of all nodes, comma-separated (for
// nats.Connect, so a connection can fail over between nodes).
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Node returns node i (0-based).
func (c *Cluster) Node(i int) *natsserver.Server { return c.nodes[i] }

// Close shuts every node down and waits for them. Nodes already shut
// down are fine.
func (c *Cluster) Close() {
	for _, s := range c.nodes {
		s.Shutdown()
	}
	for _, s := range c.nodes {
		s.WaitForShutdown()
	}
}
