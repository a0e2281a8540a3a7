package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Two writers turn facts into an update. The built-in writer is
// deterministic and needs no model; it is what an air-gapped install without
// a model gets, and the fallback whenever the model fails, is too slow, or
// writes something the facts do not support.

// Summarizer is a language model behind an HTTP API (engine/assist/ollama
// implements it). It gets a system and a user prompt and streams its answer
// to onText as it comes.
type Summarizer interface {
	Complete(ctx context.Context, system, user string, onText func(chunk string)) (string, error)
	Model() string
}

// Writers.
const (
	WriterBuiltin = "builtin"
	WriterModel   = "model"
)

// writeBuiltin renders facts as a Markdown update: headline, done, in
// progress, risks and blocked, next up, per-person highlights. Each line
// cites the fact it comes from.
func writeBuiltin(f *Facts) string {
	var b strings.Builder
	t := f.Totals
	var head []string
	if t.Completed > 0 {
		head = append(head, plural(t.Completed, "task", "tasks")+" done")
	}
	if t.Started > 0 {
		head = append(head, fmt.Sprintf("%d started", t.Started))
	}
	if t.Blocked > 0 {
		head = append(head, fmt.Sprintf("%d blocked", t.Blocked))
	}
	if t.Overdue > 0 {
		head = append(head, fmt.Sprintf("%d overdue", t.Overdue))
	}
	if len(head) == 0 {
		head = append(head, "a quiet period: nothing finished or started")
	}
	names := make([]string, 0, len(f.Projects))
	for _, p := range f.Projects {
		names = append(names, p.Name)
	}
	fmt.Fprintf(&b, "**%s** — %s (%s to %s).\n", strings.Join(names, ", "), strings.Join(head, ", "),
		f.From.Format("Mon 2 Jan"), f.To.Add(-1).Format("Mon 2 Jan"))
	section := func(title string, items []TaskFact, more int, line func(TaskFact) string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n### %s\n", title)
		for _, it := range items {
			fmt.Fprintf(&b, "- %s [%s]\n", line(it), it.Ref)
		}
		if more > len(items) {
			fmt.Fprintf(&b, "- and %d more\n", more-len(items))
		}
	}
	section("Done", f.Completed, t.Completed, func(x TaskFact) string {
		return fmt.Sprintf("%s %s — by %s", x.Key, x.Title, x.By)
	})
	section("In progress", f.Started, t.Started, func(x TaskFact) string {
		return fmt.Sprintf("%s %s — started by %s", x.Key, x.Title, x.By)
	})
	var risks []TaskFact
	risks = append(risks, f.Blocked...)
	risks = append(risks, f.Overdue...)
	risks = append(risks, f.Stalled...)
	section("Risks and blocked", risks, 0, func(x TaskFact) string {
		switch {
		case slices.ContainsFunc(f.Blocked, func(y TaskFact) bool { return y.Ref == x.Ref }):
			return fmt.Sprintf("%s %s is blocked%s", x.Key, x.Title, owners(x))
		case slices.ContainsFunc(f.Overdue, func(y TaskFact) bool { return y.Ref == x.Ref }):
			return fmt.Sprintf("%s %s is %s overdue (due %s)%s", x.Key, x.Title, plural(x.Days, "day", "days"), x.Due, owners(x))
		}
		return fmt.Sprintf("%s %s has not moved for %s%s", x.Key, x.Title, plural(x.Days, "day", "days"), owners(x))
	})
	section("Next up", f.DueSoon, t.DueSoon, func(x TaskFact) string {
		return fmt.Sprintf("%s %s, due %s%s", x.Key, x.Title, x.Due, owners(x))
	})
	if len(f.Decisions) > 0 {
		b.WriteString("\n### Decisions\n")
		for _, d := range f.Decisions {
			fmt.Fprintf(&b, "- %s %s: “%s” — %s [%s]\n", d.Key, d.Title, d.Excerpts[0], strings.Join(d.By, ", "), d.Ref)
		}
	}
	if len(f.People) > 0 {
		b.WriteString("\n### People\n")
		for _, p := range f.People {
			var parts []string
			if p.Completed > 0 {
				parts = append(parts, fmt.Sprintf("finished %d", p.Completed))
			}
			if p.Started > 0 {
				parts = append(parts, fmt.Sprintf("started %d", p.Started))
			}
			if p.Comments > 0 {
				parts = append(parts, plural(p.Comments, "comment", "comments"))
			}
			parts = append(parts, fmt.Sprintf("%d open", p.Open))
			fmt.Fprintf(&b, "- %s: %s [%s]\n", p.Name, strings.Join(parts, ", "), p.Ref)
		}
	}
	return b.String()
}

func owners(x TaskFact) string {
	if len(x.Assignees) == 0 {
		return ", unassigned"
	}
	return " — " + strings.Join(x.Assignees, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

const systemPrompt = `You write short project status updates for a team that does not hold standups.
Use ONLY the facts in the JSON you are given. Do not add tasks, people, numbers or dates that are not in it.
After every statement, cite the reference IDs of the facts it uses in square brackets, e.g. [C1] or [O2][P1].
Write Markdown: a one-line headline, then short sections (Done, In progress, Risks and blocked, Next up, People), and leave out empty sections.
Refer to tasks by their key (e.g. WEB-12) and title, to people by name. Be brief and factual.`

// userPrompt is the facts as JSON, the only ground the model gets.
func userPrompt(f *Facts) (string, error) {
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return "", err
	}
	return "Facts for the update:\n" + string(b), nil
}

var (
	refRE     = regexp.MustCompile(`\[([A-Z]\d{1,3})\]`)
	taskKeyIn = regexp.MustCompile(`\b[A-Z][A-Z0-9]{1,9}-\d+\b`)
	numberRE  = regexp.MustCompile(`\d+`)
)

// checkModelText accepts a model's text only if every reference it cites
// exists, every task key it names is in the facts, every person of the
// workspace it names is in the facts, and every number it states appears in
// the facts. It returns why the text was refused.
func checkModelText(text string, f *Facts, memberNames []string) error {
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("the model wrote nothing")
	}
	cited := refRE.FindAllStringSubmatch(text, -1)
	if len(cited) == 0 {
		return fmt.Errorf("the model cited no facts")
	}
	for _, m := range cited {
		if _, ok := f.Refs[m[1]]; !ok {
			return fmt.Errorf("the model cited %s, which is not a fact", m[1])
		}
	}
	factsJSON, err := json.Marshal(f)
	if err != nil {
		return err
	}
	grounded := string(factsJSON)
	for _, key := range taskKeyIn.FindAllString(text, -1) {
		if !strings.Contains(grounded, `"`+key+`"`) {
			return fmt.Errorf("the model named %s, which is not in the facts", key)
		}
	}
	known := map[string]bool{}
	for _, n := range numberRE.FindAllString(grounded, -1) {
		known[strings.TrimLeft(n, "0")] = true
	}
	// Reference IDs and task keys carry numbers of their own.
	stripped := taskKeyIn.ReplaceAllString(refRE.ReplaceAllString(text, ""), "")
	for _, n := range numberRE.FindAllString(stripped, -1) {
		if !known[strings.TrimLeft(n, "0")] {
			return fmt.Errorf("the model stated the number %s, which is not in the facts", n)
		}
	}
	for _, name := range memberNames {
		if name == "" || !strings.Contains(text, name) {
			continue
		}
		if !strings.Contains(grounded, `"`+name+`"`) {
			return fmt.Errorf("the model named %s, who is not in the facts", name)
		}
	}
	return nil
}
