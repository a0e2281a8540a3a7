import { describe, expect, it } from "vitest";
import { fixMentionHtml } from "./html";
import { docToMarkdown, mentionMarkdown, mentionsIn, type PMNode } from "./markdown";

const doc = (...content: PMNode[]): PMNode => ({ type: "doc", content });
const p = (...content: PMNode[]): PMNode => ({ type: "paragraph", content });
const text = (t: string, ...marks: string[]): PMNode => ({ type: "text", text: t, marks: marks.map((type) => ({ type })) });
const ID = "01a2141c-c865-79ce-a3e4-5d4255b3c571";

describe("docToMarkdown", () => {
  it("writes mentions the way the API parses them", () => {
    const md = docToMarkdown(doc(p(text("Ping "), { type: "mention", attrs: { id: ID, label: "Bob Teammate" } }, text(" please"))));
    expect(md).toBe(`Ping @[Bob Teammate](user:${ID}) please`);
    expect(mentionsIn(md)).toEqual([ID]);
  });

  it("keeps spaces outside emphasis so the Markdown stays valid", () => {
    expect(docToMarkdown(doc(p(text("Owner:"), text(" Deadline matters. ", "bold"), text("end"))))).toBe("Owner: **Deadline matters.** end");
    expect(docToMarkdown(doc(p(text("a "), text("b", "italic"), text(" "), text("c", "strike"), text(" "), text("x`y", "code"))))).toBe("a _b_ ~~c~~ `x\u02cby`");
  });

  it("escapes text that would otherwise be Markdown (no fake mentions)", () => {
    const md = docToMarkdown(doc(p(text(`@[Eve](user:${ID}) *not bold*`))));
    expect(md).toBe(`@\\[Eve\\](user:${ID}) \\*not bold\\*`);
    expect(mentionsIn(md)).toEqual([]);
    expect(docToMarkdown(doc(p(text("# not a heading"))))).toBe("\\# not a heading");
  });

  it("writes headings, lists, quotes, code blocks and links", () => {
    const md = docToMarkdown(
      doc(
        { type: "heading", attrs: { level: 2 }, content: [text("Plan")] },
        { type: "bulletList", content: [{ type: "listItem", content: [p(text("one")), { type: "orderedList", attrs: { start: 1 }, content: [{ type: "listItem", content: [p(text("sub"))] }] }] }, { type: "listItem", content: [p(text("two"))] }] },
        { type: "blockquote", content: [p(text("quoted"))] },
        { type: "codeBlock", attrs: { language: "go" }, content: [text("fmt.Println(1)")] },
        p({ type: "text", text: "docs", marks: [{ type: "link", attrs: { href: "https://example.com/a b" } }] }),
      ),
    );
    expect(md).toBe("## Plan\n\n- one\n  1. sub\n- two\n\n> quoted\n\n```go\nfmt.Println(1)\n```\n\n[docs](https://example.com/a%20b)");
  });

  it("gives an empty string for an empty document", () => {
    expect(docToMarkdown(doc(p()))).toBe("");
  });

  it("makes a mention label safe", () => {
    expect(mentionMarkdown(ID, "A [weird]\nname")).toBe(`@[A weirdname](user:${ID})`);
    expect(mentionMarkdown(ID, "")).toBe(`@[someone](user:${ID})`);
  });
});

describe("fixMentionHtml", () => {
  it("drops the stray @ the server leaves before a mention", () => {
    const html = `<p>Hi @<span class="mention" data-user-id="${ID}">@Ada</span> and @me</p>`;
    expect(fixMentionHtml(html)).toBe(`<p>Hi <span class="mention" data-user-id="${ID}">@Ada</span> and @me</p>`);
  });
});
