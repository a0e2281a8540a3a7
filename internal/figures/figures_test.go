package figures

import "testing"

func TestResultAndLine(t *testing.T) {
	cases := []struct {
		f    Figure
		want string
		line string
	}{
		{Eq("foreign_keys_returned", 0, 0), Pass, "FIGURE T3.foreign_keys_returned value=0 limit==0 result=PASS seed=7"},
		{Eq("lost", 2, 0), Fail, "FIGURE T3.lost value=2 limit==0 result=FAIL seed=7"},
		{Guard("acked_ops", 10, 100), Inconclusive, "FIGURE T3.acked_ops value=10 limit=>=100 result=INCONCLUSIVE seed=7"},
		{Guard("acked_ops", 100, 100), Pass, "FIGURE T3.acked_ops value=100 limit=>=100 result=PASS seed=7"},
		{Le("p", 0.5, 0.25), Fail, "FIGURE T3.p value=0.5 limit=<=0.25 result=FAIL seed=7"},
		{Figure{Metric: "rate", Value: 0.01, Op: ">", Limit: 0}, Pass, "FIGURE T3.rate value=0.01 limit=>0 result=PASS seed=7"},
		{Figure{Metric: "x", Value: 1, Op: "?", Limit: 0}, Fail, "FIGURE T3.x value=1 limit=?0 result=FAIL seed=7"},
	}
	for _, c := range cases {
		if got := c.f.Result(); got != c.want {
			t.Errorf("%+v: result %s, want %s", c.f, got, c.want)
		}
		if got := c.f.Line("T3", 7); got != c.line {
			t.Errorf("line %q, want %q", got, c.line)
		}
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if root == "" {
		t.Fatal("empty root")
	}
}
