// Package figures prints and records the figures of reliability checkers in
// the format of docs/RELIABILITY.md 2.0:
//
//	FIGURE <ID>.<metric> value=<v> limit=<op><n> result=PASS|FAIL|INCONCLUSIVE seed=<s>
//
// and writes the same data as JSON to results/<ID>.json at the repository
// root. A FAIL or INCONCLUSIVE figure fails the test.
package figures

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Figure is one checked number.
type Figure struct {
	Metric string
	Value  float64
	Op     string // "=", "<=", ">=", "<", ">" (printed as limit=<op><n>, e.g. limit==0)
	Limit  float64
	// Vacuity marks a guard that proves the run tested something: missing
	// it makes the figure INCONCLUSIVE rather than FAIL.
	Vacuity bool
}

// Outcome values.
const (
	Pass         = "PASS"
	Fail         = "FAIL"
	Inconclusive = "INCONCLUSIVE"
)

// Eq, Le and Ge build the usual figures.
func Eq(metric string, v, limit float64) Figure {
	return Figure{Metric: metric, Value: v, Op: "=", Limit: limit}
}
func Le(metric string, v, limit float64) Figure {
	return Figure{Metric: metric, Value: v, Op: "<=", Limit: limit}
}
func Ge(metric string, v, limit float64) Figure {
	return Figure{Metric: metric, Value: v, Op: ">=", Limit: limit}
}

// Guard builds a vacuity guard: v must be at least min.
func Guard(metric string, v, min float64) Figure {
	return Figure{Metric: metric, Value: v, Op: ">=", Limit: min, Vacuity: true}
}

// Result is the outcome of one figure.
func (f Figure) Result() string {
	var ok bool
	switch f.Op {
	case "=", "==":
		ok = f.Value == f.Limit
	case "<=":
		ok = f.Value <= f.Limit
	case ">=":
		ok = f.Value >= f.Limit
	case "<":
		ok = f.Value < f.Limit
	case ">":
		ok = f.Value > f.Limit
	}
	switch {
	case ok:
		return Pass
	case f.Vacuity:
		return Inconclusive
	}
	return Fail
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// Line renders the figure as one FIGURE line.
func (f Figure) Line(id string, seed int64) string {
	return fmt.Sprintf("FIGURE %s.%s value=%s limit=%s%s result=%s seed=%d",
		id, f.Metric, num(f.Value), f.Op, num(f.Limit), f.Result(), seed)
}

type jsonFigure struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Limit  string  `json:"limit"`
	Result string  `json:"result"`
	Line   string  `json:"line"`
}

type jsonReport struct {
	ID      string       `json:"id"`
	Seed    int64        `json:"seed"`
	Result  string       `json:"result"`
	Figures []jsonFigure `json:"figures"`
}

// Report logs each figure, writes results/<id>.json and fails t on any FAIL
// or INCONCLUSIVE. It returns the overall outcome.
func Report(t testing.TB, id string, seed int64, figs []Figure) string {
	t.Helper()
	return ReportFile(t, id+".json", id, seed, figs)
}

// ReportFile is Report with the file name under results/ chosen by the
// caller (a negative-control build writes beside the real result).
func ReportFile(t testing.TB, file, id string, seed int64, figs []Figure) string {
	t.Helper()
	rep := jsonReport{ID: id, Seed: seed, Result: Pass}
	for _, f := range figs {
		line := f.Line(id, seed)
		t.Log(line)
		r := f.Result()
		switch {
		case r == Fail:
			rep.Result = Fail
		case r == Inconclusive && rep.Result == Pass:
			rep.Result = Inconclusive
		}
		rep.Figures = append(rep.Figures, jsonFigure{Metric: f.Metric, Value: f.Value, Limit: f.Op + num(f.Limit), Result: r, Line: line})
	}
	if err := write(file, rep); err != nil {
		t.Errorf("figures: %v", err)
	}
	if rep.Result != Pass {
		t.Errorf("%s: %s (seed=%d; rerun with SEED=%d)", id, rep.Result, seed, seed)
	}
	return rep.Result
}

func write(file string, rep jsonReport) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, file), append(b, '\n'), 0o644)
}

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Seed returns the run's seed: $SEED when set (to replay a run), otherwise
// a fresh random one. It logs the seed either way.
func Seed(t testing.TB) int64 {
	t.Helper()
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("figures: SEED=%q: %v", s, err)
		}
		t.Logf("seed=%d (from SEED)", v)
		return v
	}
	v := rand.Int64N(1 << 53)
	t.Logf("seed=%d (replay with SEED=%d)", v, v)
	return v
}
