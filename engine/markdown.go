package engine

import (
	"bytes"
	"regexp"
	"strings"
	"sync"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// Markdown is stored as written and turned into HTML only on output:
// goldmark renders it, a transformer turns mention links into spans, and
// bluemonday removes anything that could run in the reader's browser.

// mentionRE finds mentions written as @[Name](user:<id>): the ID makes
// names free to repeat and to change.
var mentionRE = regexp.MustCompile(`@\[([^\]\n]{1,100})\]\(user:([0-9a-f-]{36})\)`)

// Mentions returns the distinct user IDs mentioned in markdown, in order.
func Mentions(md string) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range mentionRE.FindAllStringSubmatch(md, -1) {
		if !seen[m[2]] {
			seen[m[2]] = true
			out = append(out, m[2])
		}
	}
	return out
}

type mentionTransformer struct{}

// Transform replaces links to user:<id> with a mention span carrying the ID.
func (mentionTransformer) Transform(doc *ast.Document, reader text.Reader, _ parser.Context) {
	var links []*ast.Link
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if l, ok := n.(*ast.Link); ok && entering && bytes.HasPrefix(l.Destination, []byte("user:")) {
			links = append(links, l)
		}
		return ast.WalkContinue, nil
	})
	for _, l := range links {
		id := string(l.Destination[len("user:"):])
		label := string(nodeText(l, reader.Source()))
		parent := l.Parent()
		if parent == nil {
			continue
		}
		repl := &mentionNode{ID: id, Label: strings.TrimPrefix(label, "@")}
		// A mention is written @[Name](user:id): the @ before the link is
		// part of the mention, not text to keep.
		if prev, ok := l.PreviousSibling().(*ast.Text); ok {
			seg := prev.Segment
			if seg.Len() > 0 && reader.Source()[seg.Stop-1] == '@' {
				prev.Segment = seg.WithStop(seg.Stop - 1)
			}
		}
		parent.ReplaceChild(parent, l, repl)
	}
}

func nodeText(n ast.Node, src []byte) []byte {
	var b bytes.Buffer
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if t, ok := c.(*ast.Text); ok {
			b.Write(t.Segment.Value(src))
		} else {
			b.Write(nodeText(c, src))
		}
	}
	return b.Bytes()
}

// mentionNode is an inline node rendered as <span class="mention">.
type mentionNode struct {
	ast.BaseInline
	ID    string
	Label string
}

var kindMention = ast.NewNodeKind("Mention")

func (n *mentionNode) Kind() ast.NodeKind { return kindMention }

func (n *mentionNode) Dump(src []byte, level int) {
	ast.DumpHelper(n, src, level, map[string]string{"ID": n.ID}, nil)
}

type mentionRenderer struct{}

func (mentionRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(kindMention, func(w util.BufWriter, _ []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			m := n.(*mentionNode)
			_, _ = w.WriteString(`<span class="mention" data-user-id="`)
			_, _ = w.Write(util.EscapeHTML([]byte(m.ID)))
			_, _ = w.WriteString(`">@`)
			_, _ = w.Write(util.EscapeHTML([]byte(m.Label)))
			_, _ = w.WriteString(`</span>`)
		}
		return ast.WalkContinue, nil
	})
}

var (
	mdOnce   sync.Once
	mdEngine goldmark.Markdown
	mdPolicy *bluemonday.Policy
)

func markdown() (goldmark.Markdown, *bluemonday.Policy) {
	mdOnce.Do(func() {
		mdEngine = goldmark.New(
			goldmark.WithExtensions(extension.GFM),
			goldmark.WithParserOptions(parser.WithASTTransformers(util.Prioritized(mentionTransformer{}, 100))),
			goldmark.WithRendererOptions(renderer.WithNodeRenderers(util.Prioritized(mentionRenderer{}, 500))),
		)
		p := bluemonday.UGCPolicy()
		p.AllowAttrs("class").Matching(regexp.MustCompile(`^mention$`)).OnElements("span")
		p.AllowAttrs("data-user-id").Matching(regexp.MustCompile(`^[0-9a-f-]{36}$`)).OnElements("span")
		p.RequireNoFollowOnLinks(true)
		p.AddTargetBlankToFullyQualifiedLinks(true)
		mdPolicy = p
	})
	return mdEngine, mdPolicy
}

// RenderMarkdown turns user Markdown into sanitized HTML.
func RenderMarkdown(md string) string {
	if md == "" {
		return ""
	}
	eng, pol := markdown()
	var buf bytes.Buffer
	if err := eng.Convert([]byte(md), &buf); err != nil {
		// Conversion only fails on writer errors; fall back to escaped text.
		return pol.Sanitize("<p>" + string(util.EscapeHTML([]byte(md))) + "</p>")
	}
	return string(pol.SanitizeBytes(buf.Bytes()))
}
