package engine

import (
	"regexp"
	"strings"
	"testing"
)

var dangerous = regexp.MustCompile(`(?i)<script|<iframe|<object|<embed|\son[a-z]+\s*=|javascript:|vbscript:|data:text/html`)

func TestRenderMarkdown(t *testing.T) {
	id := "01a2b3c4-0000-7000-8000-000000000001"
	html := RenderMarkdown("**hi** @[Ann Lee](user:" + id + ") [x](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n- [ ] todo")
	for _, want := range []string{"<strong>hi</strong>", `<span class="mention" data-user-id="` + id + `">@Ann Lee</span>`} {
		if !strings.Contains(html, want) {
			t.Errorf("missing %q in %s", want, html)
		}
	}
	if strings.Contains(html, "@<span") || strings.Contains(html, "@@") {
		t.Errorf("the @ of a mention is doubled: %s", html)
	}
	if dangerous.MatchString(html) {
		t.Errorf("dangerous output: %s", html)
	}
	if got := Mentions("@[A](user:" + id + ") and @[A again](user:" + id + ")"); len(got) != 1 || got[0] != id {
		t.Errorf("mentions %v", got)
	}
}

// FuzzMarkdownSanitize: whatever the input, the HTML carries no script, no
// event handler and no javascript: URL (RELIABILITY F2).
func FuzzMarkdownSanitize(f *testing.F) {
	for _, s := range []string{
		"<script>alert(1)</script>", "[x](javascript:alert(1))", "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
		"<img src=x onerror=alert(1)>", "@[x\"><script>](user:01a2b3c4-0000-7000-8000-000000000001)",
		"```html\n<script>\n```", "<svg onload=alert(1)>", "[a](<javascript:alert(1)>)", "<iframe src=//x>",
		"<div style=\"background:url(javascript:alert(1))\">", "| a |\n|---|\n| <b onclick=x>b</b> |",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, md string) {
		html := RenderMarkdown(md)
		if loc := dangerous.FindStringIndex(html); loc != nil {
			// Text content may legitimately say "javascript:"; only markup counts.
			if inMarkup(html, loc[0]) {
				t.Fatalf("input %q rendered dangerous markup: %s", md, html)
			}
		}
	})
}

// inMarkup reports whether position i of html lies inside a tag.
func inMarkup(html string, i int) bool {
	open := strings.LastIndexByte(html[:i+1], '<')
	close := strings.LastIndexByte(html[:i+1], '>')
	return open > close
}
