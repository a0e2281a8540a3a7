package main

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
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
	} `toml:"http"`
	Metrics struct {
		Token string `toml:"token" flag:"metrics-token" help:"bearer token required on /metrics (empty: open)"`
	} `toml:"metrics"`
	Debug struct {
		PprofAddr string `toml:"pprof_addr" flag:"pprof-addr" help:"serve Go's pprof profiles on this address (keep it on loopback; empty: off)"`
	} `toml:"debug"`
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
		b, err := strconv.ParseBool(v)
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
	if c.BaseURL == "" {
		c.BaseURL = "http://" + c.Addr
	}
	return nil
}
