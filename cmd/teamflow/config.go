package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
	"github.com/teamflow/teamflow/cluster"
)

// Config is everything `teamflow serve` reads at start. Precedence:
// defaults < config file < TEAMFLOW_* environment < flags. Settings that
// change at run time live in the replicated store, not here.
type Config struct {
	Mode        string `toml:"mode" flag:"mode" help:"onprem (one-time setup link, invitations) or cloud (self-service signup of many workspaces)"`
	Addr        string `toml:"addr" flag:"addr" help:"HTTP listen address"`
	Data        string `toml:"data" flag:"data" help:"data directory"`
	BaseURL     string `toml:"base_url" flag:"base-url" help:"public URL used in links (default http://<addr>)"`
	DefaultPlan string `toml:"default_plan" flag:"default-plan" help:"plan of new workspaces: free, starter, professional or enterprise"`

	Log struct {
		Level  string `toml:"level" flag:"log-level" help:"debug, info, warn or error"`
		Format string `toml:"format" flag:"log-format" help:"json or text"`
	} `toml:"log"`
	HTTP struct {
		SecureCookies   bool          `toml:"secure_cookies" flag:"secure-cookies" help:"mark session cookies Secure (serve over https, e.g. behind a TLS proxy)"`
		ShutdownTimeout time.Duration `toml:"shutdown_timeout" flag:"shutdown-timeout" help:"how long in-flight requests may finish on SIGTERM"`
		MinIndexWait    time.Duration `toml:"min_index_wait" flag:"min-index-wait" help:"how long a read with TeamFlow-Min-Index waits for this node to catch up"`
		TrustedProxies  string        `toml:"trusted_proxies" flag:"trusted-proxies" help:"comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client (empty: trust none)"`
	} `toml:"http"`
	// TLS: serve https from a certificate and key, or from a self-signed
	// pair generated on the first start (kept under <data>/tls).
	TLS struct {
		Cert       string `toml:"cert" flag:"tls-cert" help:"TLS certificate file (PEM, with its chain): serve https"`
		Key        string `toml:"key" flag:"tls-key" help:"TLS private key file (PEM)"`
		SelfSigned bool   `toml:"self_signed" flag:"tls-self-signed" help:"serve https with a self-signed certificate generated on the first start (kept in <data>/tls)"`
	} `toml:"tls"`
	// RateLimits turns the request limits on or off for the installation
	// (an on-prem site or a benchmark may not want them).
	RateLimits string `toml:"rate_limits" flag:"rate-limits" help:"on or off: the plan's hourly API limits, the web UI's allowance and the per-address sign-in limit"`
	// GCPercent trades memory for CPU: the Go collector runs when the heap
	// has grown by this percentage since the last collection. Go's default
	// is 100; at 200 a loaded node spent about 8% less CPU per write
	// (docs/BENCHMARKS.md) for about 80 MiB more resident memory.
	GCPercent int `toml:"gc_percent" flag:"gc-percent" help:"Go collector target (GOGC): heap growth in percent between collections; the GOGC environment variable, when set, wins"`
	// MaxProcs is how many goroutines run at once (GOMAXPROCS). Go's
	// default, one per CPU, lets the search indexer's batch (analysis,
	// segment building, merges) hold every P for Go's 10 ms time slice
	// while requests wait; with twice as many Ps as CPUs the kernel
	// interleaves the threads more finely, and at an offered 1,000
	// creates/s the p95 fell from 19–41 ms to 9–10 ms (docs/BENCHMARKS.md).
	MaxProcs int `toml:"max_procs" flag:"max-procs" help:"goroutines running at once (GOMAXPROCS); 0: twice the CPUs available to the process; the GOMAXPROCS environment variable, when set, wins"`
	Metrics  struct {
		Token string `toml:"token" flag:"metrics-token" help:"bearer token required on /metrics (empty: open)"`
	} `toml:"metrics"`
	// Mail: the SMTP server the outbox delivers through. Without a host the
	// installation sends no mail (invitation links go to the inviting admin).
	Mail struct {
		Host     string `toml:"host" flag:"mail-host" help:"SMTP server host (empty: send no mail)"`
		Port     int    `toml:"port" flag:"mail-port" help:"SMTP port (default 587 for starttls, 465 for tls, 25 for none)"`
		Security string `toml:"security" flag:"mail-security" help:"starttls, tls or none"`
		Username string `toml:"username" flag:"mail-username" help:"SMTP user (empty: no authentication)"`
		Password string `toml:"password" flag:"mail-password" help:"SMTP password (prefer TEAMFLOW_MAIL__PASSWORD__FILE)"`
		From     string `toml:"from" flag:"mail-from" help:"sender, e.g. \"TeamFlow <teamflow@example.com>\""`
	} `toml:"mail"`
	// AI: the local model that writes status updates. Without an endpoint
	// the built-in writer writes them (air-gapped installs need nothing).
	AI struct {
		Endpoint string        `toml:"endpoint" flag:"ai-endpoint" help:"Ollama URL, e.g. http://127.0.0.1:11434 (empty: the built-in writer only)"`
		Model    string        `toml:"model" flag:"ai-model" help:"Ollama model that writes status updates, e.g. llama3.2"`
		Timeout  time.Duration `toml:"timeout" flag:"ai-timeout" help:"longest wait for one update from the model before the built-in writer takes over"`
	} `toml:"ai"`
	Audit struct {
		ExportPath string `toml:"export_path" flag:"audit-export" help:"append every workspace's audit-chain head to this file every 10 minutes; keep it off the data disk (teamflow audit verify checks against it)"`
	} `toml:"audit"`
	// Attachments: limits of the files on tasks and comments (docs/ATTACHMENTS.md).
	Attachments struct {
		MaxFileBytes uint64 `toml:"max_file_bytes" flag:"attachments-max-file-bytes" help:"largest attached file in bytes (0: 256 MiB)"`
		StorageBytes uint64 `toml:"storage_bytes" flag:"attachments-storage-bytes" help:"every workspace's storage quota in bytes, replacing the plan's (0: the plan's)"`
	} `toml:"attachments"`
	Debug struct {
		PprofAddr string `toml:"pprof_addr" flag:"pprof-addr" help:"serve Go's pprof profiles on this address (keep it on loopback; empty: off)"`
	} `toml:"debug"`
	// Cluster: with a node ID the node is a member of a raft cluster
	// (docs/CLUSTER.md); without one it runs alone.
	Cluster struct {
		NodeID   uint64 `toml:"node_id" flag:"node-id" help:"this node's raft ID (a positive integer, never reused); set it to run as a cluster member"`
		Peers    string `toml:"peers" flag:"peers" help:"raft addresses of the members, this node included: 1=host:port,2=host:port,3=host:port (identical on every node of a first start)"`
		RaftAddr string `toml:"raft_addr" flag:"raft-addr" help:"raft listen address (default: this node's entry in --peers)"`
		Join     bool   `toml:"join" flag:"join" help:"start as a new member that 'teamflow cluster join' adds (no bootstrap; --peers names current members)"`
		CertDir  string `toml:"cert_dir" flag:"cluster-cert-dir" help:"directory written by 'teamflow cluster certs': ca.crt and node<ID>.crt/.key are taken from it unless given one by one"`
		CA       string `toml:"ca" flag:"cluster-ca" help:"cluster CA certificate (mutual TLS between nodes)"`
		Cert     string `toml:"cert" flag:"cluster-cert" help:"this node's certificate"`
		Key      string `toml:"key" flag:"cluster-key" help:"this node's private key"`

		Tick            time.Duration `toml:"tick" flag:"raft-tick" help:"raft clock tick"`
		ElectionTicks   int           `toml:"election_ticks" flag:"raft-election-ticks" help:"election timeout in ticks"`
		SnapshotEntries int           `toml:"snapshot_entries" flag:"raft-snapshot-entries" help:"compact the raft log every this many applied entries (a follower further behind catches up by snapshot)"`
		CatchUpEntries  int           `toml:"catchup_entries" flag:"raft-catchup-entries" help:"entries kept behind a compaction for followers that lag a little"`
	} `toml:"cluster"`
}

func defaultConfig() Config {
	var c Config
	c.Mode = "onprem"
	c.Addr = "127.0.0.1:8080"
	c.Data = "./data"
	c.DefaultPlan = "free"
	c.Log.Level = "info"
	c.Log.Format = "json"
	c.HTTP.ShutdownTimeout = 30 * time.Second
	c.HTTP.MinIndexWait = 10 * time.Second
	c.RateLimits = "on"
	c.GCPercent = 200
	c.Mail.Security = "starttls"
	c.AI.Model = "llama3.2"
	c.AI.Timeout = 60 * time.Second
	c.Cluster.Tick = 100 * time.Millisecond
	c.Cluster.ElectionTicks = 10
	c.Cluster.SnapshotEntries = 10_000
	c.Cluster.CatchUpEntries = 5_000
	return c
}

// bindFlags declares one flag per field that has a `flag` tag.
func bindFlags(fs *pflag.FlagSet, c *Config) {
	walk(reflect.ValueOf(c).Elem(), "", func(f reflect.Value, sf reflect.StructField, _ string) {
		name := sf.Tag.Get("flag")
		if name == "" {
			return
		}
		help := sf.Tag.Get("help")
		switch p := f.Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, help)
		case *bool:
			fs.BoolVar(p, name, *p, help)
		case *int:
			fs.IntVar(p, name, *p, help)
		case *uint64:
			fs.Uint64Var(p, name, *p, help)
		case *time.Duration:
			fs.DurationVar(p, name, *p, help)
		}
	})
}

// loadConfig applies file and environment under the flags the user set:
// flags were parsed into c already, so their values are saved, the lower
// layers applied, and the changed flags put back on top.
func loadConfig(fs *pflag.FlagSet, c *Config, file string, environ []string) error {
	flagged := map[string]string{}
	fs.Visit(func(f *pflag.Flag) { flagged[f.Name] = f.Value.String() })
	if file != "" {
		if _, err := toml.DecodeFile(file, c); err != nil {
			return fmt.Errorf("config file %s: %w", file, err)
		}
	}
	if err := applyEnv(c, environ); err != nil {
		return err
	}
	for name, v := range flagged {
		if name == "config" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return err
		}
	}
	return nil
}

// applyEnv reads TEAMFLOW_<SECTION>__<KEY> (TEAMFLOW_ADDR for top-level
// keys); a __FILE suffix reads the value from a file, for secrets.
func applyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "TEAMFLOW_") {
			env[k] = v
		}
	}
	var err error
	walk(reflect.ValueOf(c).Elem(), "", func(f reflect.Value, _ reflect.StructField, path string) {
		if err != nil {
			return
		}
		name := "TEAMFLOW_" + strings.ToUpper(strings.ReplaceAll(path, ".", "__"))
		v, ok := env[name]
		if file, fok := env[name+"__FILE"]; fok {
			b, rerr := os.ReadFile(file)
			if rerr != nil {
				err = fmt.Errorf("%s__FILE: %w", name, rerr)
				return
			}
			v, ok = strings.TrimSpace(string(b)), true
		}
		if ok {
			if serr := setValue(f, v); serr != nil {
				err = fmt.Errorf("%s: %w", name, serr)
			}
		}
	})
	return err
}

func setValue(f reflect.Value, v string) error {
	switch p := f.Addr().Interface().(type) {
	case *string:
		*p = v
	case *bool:
		b, err := parseBool(v)
		if err != nil {
			return err
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		*p = n
	case *uint64:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return err
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// parseBool also takes on/off and yes/no, as operators write them.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "yes":
		return true, nil
	case "off", "no":
		return false, nil
	}
	return strconv.ParseBool(v)
}

// walk visits every leaf field with its dotted toml path.
func walk(v reflect.Value, prefix string, fn func(reflect.Value, reflect.StructField, string)) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name := sf.Tag.Get("toml")
		if name == "" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		if sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[time.Duration]() {
			walk(v.Field(i), path, fn)
			continue
		}
		fn(v.Field(i), sf, path)
	}
}

func (c *Config) validate() error {
	if c.Mode != "onprem" && c.Mode != "cloud" {
		return fmt.Errorf("mode must be onprem or cloud, not %q", c.Mode)
	}
	if c.Data == "" {
		return fmt.Errorf("data directory is empty")
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if c.BaseURL == "" {
		c.BaseURL = c.scheme() + "://" + c.Addr
	}
	if _, err := parseBool(c.RateLimits); err != nil {
		return fmt.Errorf("rate_limits must be on or off, not %q", c.RateLimits)
	}
	if c.GCPercent < 25 {
		return fmt.Errorf("gc_percent must be at least 25, not %d", c.GCPercent)
	}
	if c.MaxProcs < 0 {
		return fmt.Errorf("max_procs must be 0 (twice the CPUs) or positive, not %d", c.MaxProcs)
	}
	if c.Mail.Host != "" && c.Mail.From == "" {
		return fmt.Errorf("mail: --mail-from is required with --mail-host")
	}
	for _, p := range c.trustedProxies() {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			return fmt.Errorf("trusted_proxies: %q is neither an address nor a CIDR", p)
		}
	}
	return c.validateCluster()
}

// trustedProxies splits http.trusted_proxies.
func (c *Config) trustedProxies() []string {
	var out []string
	for _, p := range strings.Split(c.HTTP.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// clustered reports whether the node runs as a member of a raft cluster.
func (c *Config) clustered() bool { return c.Cluster.NodeID != 0 }

func (c *Config) validateCluster() error {
	cl := &c.Cluster
	if !c.clustered() {
		if cl.Peers != "" || cl.Join || cl.RaftAddr != "" {
			return fmt.Errorf("--peers, --join and --raft-addr need --node-id")
		}
		return nil
	}
	if cl.Peers == "" {
		return fmt.Errorf("cluster: --peers is required with --node-id (e.g. 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003)")
	}
	peers, err := cluster.ParsePeers(cl.Peers)
	if err != nil {
		return err
	}
	if _, ok := peers[cl.NodeID]; !ok && !cl.Join && cl.RaftAddr == "" {
		return fmt.Errorf("cluster: --peers has no address for this node (%d)", cl.NodeID)
	}
	if cl.Join && cl.RaftAddr == "" && peers[cl.NodeID] == "" {
		return fmt.Errorf("cluster: a joining node needs --raft-addr")
	}
	if cl.CertDir != "" {
		name := "node" + strconv.FormatUint(cl.NodeID, 10)
		cert, key := cluster.CertFiles(cl.CertDir, name)
		if cl.CA == "" {
			cl.CA = filepath.Join(cl.CertDir, cluster.CAFile)
		}
		if cl.Cert == "" {
			cl.Cert = cert
		}
		if cl.Key == "" {
			cl.Key = key
		}
	}
	if cl.CA == "" || cl.Cert == "" || cl.Key == "" {
		return fmt.Errorf("cluster: mutual TLS needs --cluster-ca, --cluster-cert and --cluster-key (or --cluster-cert-dir); 'teamflow cluster certs' makes them")
	}
	if cl.Tick <= 0 || cl.ElectionTicks < 2 || cl.SnapshotEntries <= 0 || cl.CatchUpEntries < 0 {
		return fmt.Errorf("cluster: --raft-tick, --raft-election-ticks (>= 2) and --raft-snapshot-entries must be positive")
	}
	return nil
}
