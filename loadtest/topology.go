package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// topology is the servers a run starts on 127.0.0.1, each a separate
// process: one nats-server with JetStream and Config.Instances hub
// instances connected to it, sharing one signing key.
type topology struct {
	cfg      *Config
	dir      string
	natsURL  string
	nats     *proc       // the single nats-server, or nil
	nodes    []*natsNode // the nats-servers of a cluster (-nats-cluster)
	hubs     []*proc
	urls     []string // http://127.0.0.1:port of each hub
	hubKind  string   // what serves the hub: cmd/sessionhub or the fallback
	progress func(format string, args ...any)
}

// startTopology builds what it needs and starts the servers.
func startTopology(ctx context.Context, cfg *Config, progress func(string, ...any)) (*topology, error) {
	dir, err := os.MkdirTemp("", "sessionhub-loadtest-")
	if err != nil {
		return nil, err
	}
	t := &topology{cfg: cfg, dir: dir, progress: progress}
	ok := false
	defer func() {
		if !ok {
			t.close()
		}
	}()
	natsBin, hubArgv, err := t.binaries(ctx)
	if err != nil {
		return nil, err
	}

	if cfg.Cluster.Nodes > 1 {
		if err := t.startCluster(natsBin); err != nil {
			return nil, err
		}
	} else if err := t.startOneNATS(natsBin); err != nil {
		return nil, err
	}
	if err := t.prepareHubs(hubArgv); err != nil {
		return nil, err
	}
	for i := range t.hubs {
		if err := t.startHub(i); err != nil {
			return nil, err
		}
	}
	ok = true
	return t, nil
}

// startOneNATS starts the run's single nats-server.
func (t *topology) startOneNATS(natsBin string) error {
	cfg, dir := t.cfg, t.dir
	port, err := freePort()
	if err != nil {
		return err
	}
	t.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	natsArgv := []string{natsBin, "-js", "-sd", filepath.Join(dir, "nats"), "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-n", "loadtest"}
	conf, err := natsConf(dir, cfg.Durability)
	if err != nil {
		return err
	}
	if conf != "" {
		natsArgv = append(natsArgv, "-c", conf)
	}
	t.nats = &proc{name: "nats-server", argv: natsArgv, logPath: filepath.Join(dir, "nats-server.log")}
	return t.startNATS()
}

// prepareHubs sets up the hub instances' processes, all connected to
// every nats-server of the run, or with Config.hubNATSEmbedded each running its
// own in its process.
func (t *topology) prepareHubs(hubArgv []string) error {
	cfg, dir := t.cfg, t.dir
	key := make([]byte, 64)
	_, _ = rand.Read(key)
	env := []string{"SESSIONHUB_KEYS=" + base64.StdEncoding.EncodeToString(key)}
	for i := range cfg.Instances {
		hp, err := freePort()
		if err != nil {
			return err
		}
		argv := append(slices.Clone(hubArgv),
			"-addr", fmt.Sprintf("127.0.0.1:%d", hp),
			"-data", filepath.Join(dir, fmt.Sprintf("hub%d", i)),
			"-durability", cfg.Durability,
			"-max-ops-per-session", strconv.Itoa(cfg.MaxOpsPerSession),
			"-rate-limit", strconv.FormatFloat(cfg.HubRateLimit, 'f', -1, 64),
			"-rate-burst", strconv.Itoa(max(100, int(cfg.HubRateLimit))),
			// The load writes each session as fast as asked: its budget is
			// the sockets' rate, not the default per-session one.
			"-session-write-rate", strconv.FormatFloat(cfg.HubRateLimit*float64(max(1, cfg.Sockets)), 'f', -1, 64),
			"-session-write-burst", strconv.Itoa(max(200, int(cfg.HubRateLimit))),
		)
		if !cfg.hubNATSEmbedded() {
			argv = append(argv, "-nats", t.natsURL, "-replicas", strconv.Itoa(cfg.Cluster.replicas()))
		}
		if cfg.SendBuffer > 0 {
			argv = append(argv, "-send-buffer", strconv.Itoa(cfg.SendBuffer))
		}
		argv = append(argv, cfg.hubArgs(i)...)
		p := &proc{name: fmt.Sprintf("hub%d", i), argv: argv, env: env, logPath: filepath.Join(dir, fmt.Sprintf("hub%d.log", i))}
		t.hubs = append(t.hubs, p)
		t.urls = append(t.urls, fmt.Sprintf("http://127.0.0.1:%d", hp))
	}
	return nil
}

// binaries returns the nats-server binary and the argv prefix of a hub
// instance, building them when not given.
func (t *topology) binaries(ctx context.Context) (natsBin string, hubArgv []string, err error) {
	natsBin = t.cfg.NATSBin
	if natsBin == "" {
		natsBin = filepath.Join(t.dir, "nats-server")
		t.progress("building nats-server")
		if err := goBuild(ctx, natsBin, "github.com/nats-io/nats-server/v2"); err != nil {
			return "", nil, err
		}
	}
	switch {
	case t.cfg.Instances == 0: // nats-server alone, for the baselines
		return natsBin, nil, nil
	case t.cfg.ServerBin != "":
		t.hubKind = t.cfg.ServerBin
		return natsBin, []string{t.cfg.ServerBin}, nil
	case !t.cfg.FallbackHub && hasSessionhubCmd():
		bin := filepath.Join(t.dir, "sessionhub")
		t.progress("building cmd/sessionhub")
		if err := goBuild(ctx, bin, "./cmd/sessionhub"); err != nil {
			return "", nil, err
		}
		t.hubKind = "cmd/sessionhub" + treeVersion()
		return natsBin, []string{bin}, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	t.hubKind = "loadtest serve-hub (fallback: hub.New behind net/http)"
	return natsBin, []string{self, serveHubCmd}, nil
}

// hasSessionhubCmd reports whether the module in the working directory
// has cmd/sessionhub.
func hasSessionhubCmd() bool {
	root, err := moduleRoot()
	if err != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(root, "cmd", "sessionhub"))
	return err == nil && st.IsDir()
}

// treeVersion returns " at <commit>" of the module's git tree, with
// "+changes" when the server's sources in the working tree differ from
// it; "" outside git.
func treeVersion() string {
	root, err := moduleRoot()
	if err != nil {
		return ""
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	v := " at " + strings.TrimSpace(string(out))
	// Changes to what the server is built from: not the loadtest's own
	// files, nor documentation.
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--",
		".", ":!loadtest", ":!cmd/loadtest", ":!*.md", ":!.ci").Output()
	if err == nil && len(st) > 0 {
		v += "+changes"
	}
	return v
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

func goBuild(ctx context.Context, out, pkg string) error {
	root, err := moduleRoot()
	if err != nil {
		return fmt.Errorf("building %s: %w (give the binary with a flag)", pkg, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startNATS starts nats-server and waits until JetStream answers.
func (t *topology) startNATS() error {
	if err := t.nats.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := pingJetStream(t.natsURL)
		if err == nil {
			return nil
		}
		if isDone(t.nats.done) || time.Now().After(deadline) {
			return fmt.Errorf("nats-server not ready: %v; its log: %s\n%s", err, t.nats.logPath, tail(t.nats.logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connectJetStream connects to the nats-server at url and opens its
// JetStream API; the caller closes the connection.
func connectJetStream(url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func pingJetStream(url string) error {
	nc, js, err := connectJetStream(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// startHub starts hub instance i and waits until it listens.
func (t *topology) startHub(i int) error {
	p := t.hubs[i]
	if err := p.start(); err != nil {
		return err
	}
	if _, err := p.waitListening(60 * time.Second); err != nil {
		return err
	}
	return nil
}

// killHub SIGKILLs hub instance i and starts it again; it returns how
// long the instance was down.
func (t *topology) killHub(i int) (time.Duration, error) {
	start := time.Now()
	if err := t.hubs[i].kill(); err != nil {
		return 0, err
	}
	if err := t.startHub(i); err != nil {
		return time.Since(start), err
	}
	return time.Since(start), nil
}

// restartNATS stops nats-server with sig and starts it again on the same
// port and store; it returns how long it was down.
func (t *topology) restartNATS(sig syscall.Signal) (time.Duration, error) {
	start := time.Now()
	if err := t.nats.signal(sig, 30*time.Second); err != nil {
		return 0, err
	}
	if err := t.startNATS(); err != nil {
		return time.Since(start), err
	}
	return time.Since(start), nil
}

// close stops every process and removes the directory unless keep.
func (t *topology) close() {
	for _, h := range t.hubs {
		_ = h.stop()
	}
	if t.nats != nil {
		_ = t.nats.stop()
	}
	for _, n := range t.nodes {
		_ = n.proc.stop()
	}
	if !t.cfg.KeepData {
		_ = os.RemoveAll(t.dir)
	}
}

// natsConf writes the nats-server configuration file that strict
// durability needs (sync_interval: always) into dir and returns its path;
// "" for the default durability, which needs none.
func natsConf(dir, durability string) (string, error) {
	if durability != "strict" {
		return "", nil
	}
	conf := filepath.Join(dir, "nats-strict.conf")
	if err := os.WriteFile(conf, []byte("jetstream {\n  sync_interval: always\n}\n"), 0o644); err != nil {
		return "", err
	}
	return conf, nil
}
