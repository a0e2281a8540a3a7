// Turns the editor's document (TipTap/ProseMirror JSON) into the Markdown the
// API stores. Mentions become @[Name](user:<id>), the form the server parses
// (engine/markdown.go). Kept free of TipTap imports so it is unit-tested alone
// and stays out of the first screen's bundle.

export interface PMMark {
  type: string;
  attrs?: Record<string, unknown>;
}

export interface PMNode {
  type: string;
  attrs?: Record<string, unknown>;
  content?: PMNode[];
  text?: string;
  marks?: PMMark[];
}

/** The Markdown of one mention. Brackets and newlines in a name are dropped so the syntax holds. */
export function mentionMarkdown(id: string, name: string): string {
  const label = name.replace(/[[\]\n\r]/g, "").trim().slice(0, 100) || "someone";
  return `@[${label}](user:${id})`;
}

const MENTION_RE = /@\[([^\]\n]{1,100})\]\(user:([0-9a-f-]{36})\)/g;

/** The member IDs a Markdown body mentions, in order, each once (mirrors engine.Mentions). */
export function mentionsIn(md: string): string[] {
  const out: string[] = [];
  for (const m of md.matchAll(MENTION_RE)) if (!out.includes(m[2])) out.push(m[2]);
  return out;
}

function escapeText(s: string): string {
  // Escape what would otherwise start Markdown syntax inside running text.
  return s.replace(/([\\`*_[\]<>~|])/g, "\\$1").replace(/^(\s*)([#>+-]|\d+\.)(\s)/, "$1\\$2$3");
}

function inline(nodes: PMNode[] | undefined): string {
  if (!nodes) return "";
  let out = "";
  for (const n of nodes) {
    if (n.type === "text") {
      let t = n.text ?? "";
      const marks = n.marks ?? [];
      const code = marks.some((m) => m.type === "code");
      // Emphasis markers must hug the text: spaces at either end go outside them.
      const [, lead, core, trail] = /^(\s*)([\s\S]*?)(\s*)$/.exec(t)!;
      if (!core) {
        out += t;
        continue;
      }
      t = code ? "`" + core.replace(/`/g, "\u02cb") + "`" : escapeText(core);
      for (const m of marks) {
        if (m.type === "bold") t = `**${t}**`;
        else if (m.type === "italic") t = `_${t}_`;
        else if (m.type === "strike") t = `~~${t}~~`;
      }
      const link = marks.find((m) => m.type === "link");
      if (link && typeof link.attrs?.href === "string") t = `[${t}](${String(link.attrs.href).replace(/[()\s]/g, encodeURIComponent)})`;
      out += lead + t + trail;
    } else if (n.type === "mention") {
      out += mentionMarkdown(String(n.attrs?.id ?? ""), String(n.attrs?.label ?? ""));
    } else if (n.type === "hardBreak") {
      out += "  \n";
    } else {
      out += inline(n.content);
    }
  }
  return out;
}

function indent(text: string, prefix: string): string {
  return text
    .split("\n")
    .map((l, i) => (i === 0 ? l : l === "" ? l : " ".repeat(prefix.length) + l))
    .join("\n");
}

function block(n: PMNode): string {
  switch (n.type) {
    case "paragraph":
      return inline(n.content);
    case "heading": {
      const level = Math.min(6, Math.max(1, Number(n.attrs?.level ?? 1)));
      return "#".repeat(level) + " " + inline(n.content);
    }
    case "blockquote":
      return blocks(n.content)
        .split("\n")
        .map((l) => (l ? "> " + l : ">"))
        .join("\n");
    case "codeBlock": {
      const lang = typeof n.attrs?.language === "string" ? n.attrs.language : "";
      const body = (n.content ?? []).map((c) => c.text ?? "").join("");
      const fence = body.includes("```") ? "~~~" : "```";
      return `${fence}${lang}\n${body}\n${fence}`;
    }
    case "horizontalRule":
      return "---";
    case "bulletList":
      return (n.content ?? []).map((li) => "- " + indent(itemBlocks(li.content), "- ")).join("\n");
    case "orderedList": {
      const start = Number(n.attrs?.start ?? 1);
      return (n.content ?? [])
        .map((li, i) => {
          const p = `${start + i}. `;
          return p + indent(itemBlocks(li.content), p);
        })
        .join("\n");
    }
    default:
      return n.content ? blocks(n.content) : inline([n]);
  }
}

function blocks(nodes: PMNode[] | undefined): string {
  return (nodes ?? []).map(block).join("\n\n");
}

// A list item's blocks stay tight: a nested list follows its paragraph directly.
function itemBlocks(nodes: PMNode[] | undefined): string {
  return (nodes ?? []).map(block).join("\n");
}

/** The Markdown of a whole document; "" for an empty one. */
export function docToMarkdown(doc: PMNode): string {
  return blocks(doc.content).replace(/\n{3,}/g, "\n\n").trim();
}
