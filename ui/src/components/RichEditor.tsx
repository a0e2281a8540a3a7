// The rich-text editor for descriptions and comments (TipTap). It starts from
// the server's sanitized HTML and hands back Markdown; typing @ opens a list
// of members, and a picked member is written as @[Name](user:<id>).
// This module (and TipTap with it) is loaded lazily: never on the first screen.

import { mergeAttributes } from "@tiptap/core";
import Mention from "@tiptap/extension-mention";
import Placeholder from "@tiptap/extension-placeholder";
import { EditorContent, useEditor, useEditorState, type Editor } from "@tiptap/react";
import StarterKit from "@tiptap/starter-kit";
import type { SuggestionKeyDownProps, SuggestionProps } from "@tiptap/suggestion";
import React, { useEffect, useRef, useState } from "react";
import type { Member } from "../api/types";
import { docToMarkdown, type PMNode } from "../lib/markdown";

export interface RichEditorProps {
  /** Sanitized HTML to start from (description_html), or "" */
  initialHTML?: string;
  label: string;
  placeholder?: string;
  members: Member[];
  submitLabel: string;
  pending?: boolean;
  onSubmit: (markdown: string) => Promise<boolean | void> | boolean | void;
  onCancel?: () => void;
  autoFocus?: boolean;
  /** Clear the editor after a successful submit (comment boxes). */
  clearOnSubmit?: boolean;
  /** Allow submitting an empty editor (a comment that carries only files). */
  allowEmpty?: boolean;
  /** Shown between the editor and its buttons (a comment's files to send). */
  children?: React.ReactNode;
}

interface MentionItem {
  id: string;
  label: string;
  email: string;
}

let menuSeq = 0;

/** The @-suggestion popup: a plain DOM listbox positioned at the caret. */
function mentionRenderer() {
  let el: HTMLUListElement | null = null;
  let props: SuggestionProps<MentionItem> | null = null;
  let selected = 0;
  const id = `mention-menu-${++menuSeq}`;

  function draw() {
    if (!el || !props) return;
    const items = props.items;
    el.innerHTML = "";
    if (items.length === 0) {
      const li = document.createElement("li");
      li.textContent = "No member matches";
      li.setAttribute("aria-disabled", "true");
      el.appendChild(li);
    }
    items.forEach((item, i) => {
      const li = document.createElement("li");
      li.id = `${id}-${i}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === selected));
      li.dataset.userId = item.id;
      const name = document.createElement("strong");
      name.textContent = item.label;
      const mail = document.createElement("span");
      mail.className = "muted small";
      mail.textContent = item.email;
      li.append(name, mail);
      li.addEventListener("mousedown", (e) => {
        e.preventDefault();
        pick(i);
      });
      el!.appendChild(li);
    });
    const dom = props.editor.view.dom;
    dom.setAttribute("aria-controls", id);
    if (items.length) dom.setAttribute("aria-activedescendant", `${id}-${selected}`);
    const rect = props.clientRect?.();
    if (rect) {
      const top = Math.min(rect.bottom + 4, window.innerHeight - 270);
      el.style.top = `${Math.max(4, top)}px`;
      el.style.left = `${Math.max(4, Math.min(rect.left, window.innerWidth - 240))}px`;
    }
  }

  function pick(i: number) {
    const item = props?.items[i];
    if (item && props) props.command({ id: item.id, label: item.label });
  }

  function cleanup() {
    if (props) {
      const dom = props.editor.view.dom;
      dom.removeAttribute("aria-controls");
      dom.removeAttribute("aria-activedescendant");
    }
    el?.remove();
    el = null;
  }

  return {
    onStart(p: SuggestionProps<MentionItem>) {
      props = p;
      selected = 0;
      el = document.createElement("ul");
      el.className = "mention-menu";
      el.id = id;
      el.setAttribute("role", "listbox");
      el.setAttribute("aria-label", "Mention a member");
      document.body.appendChild(el);
      draw();
    },
    onUpdate(p: SuggestionProps<MentionItem>) {
      props = p;
      if (selected >= p.items.length) selected = 0;
      draw();
    },
    onKeyDown({ event }: SuggestionKeyDownProps) {
      const n = props?.items.length ?? 0;
      if (event.key === "Escape") {
        cleanup();
        return true;
      }
      if (!n) return false;
      if (event.key === "ArrowDown") {
        selected = (selected + 1) % n;
        draw();
        return true;
      }
      if (event.key === "ArrowUp") {
        selected = (selected + n - 1) % n;
        draw();
        return true;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        pick(selected);
        return true;
      }
      return false;
    },
    onExit() {
      cleanup();
      props = null;
    },
  };
}

/** Mentions in the server's HTML are <span class="mention" data-user-id="…">@Name</span>. */
const MemberMention = Mention.extend({
  parseHTML() {
    return [
      { tag: 'span[data-type="mention"]' },
      {
        tag: "span.mention[data-user-id]",
        getAttrs: (el: HTMLElement) => ({ id: el.getAttribute("data-user-id"), label: (el.textContent ?? "").replace(/^@/, "") }),
      },
    ];
  },
  renderHTML({ node, HTMLAttributes }) {
    return ["span", mergeAttributes({ "data-type": "mention", class: "mention" }, HTMLAttributes), `@${node.attrs.label ?? node.attrs.id}`];
  },
});

function Toolbar({ editor, label }: { editor: Editor; label: string }) {
  const s = useEditorState({
    editor,
    selector: ({ editor: e }) => ({
      bold: e.isActive("bold"),
      italic: e.isActive("italic"),
      code: e.isActive("code"),
      bullet: e.isActive("bulletList"),
      ordered: e.isActive("orderedList"),
    }),
  });
  const btn = (label: string | undefined, pressed: boolean, run: () => void, text: React.ReactNode) => (
    <button type="button" aria-label={label} aria-pressed={pressed} onMouseDown={(e) => e.preventDefault()} onClick={run}>
      {text}
    </button>
  );
  return (
    <div className="editor-toolbar" role="toolbar" aria-label={`Formatting: ${label}`}>
      {btn("Bold", s.bold, () => editor.chain().focus().toggleBold().run(), "B")}
      {btn("Italic", s.italic, () => editor.chain().focus().toggleItalic().run(), "I")}
      {btn("Code", s.code, () => editor.chain().focus().toggleCode().run(), "</>")}
      {btn(undefined, s.bullet, () => editor.chain().focus().toggleBulletList().run(), "• Bulleted list")}
      {btn(undefined, s.ordered, () => editor.chain().focus().toggleOrderedList().run(), "1. Numbered list")}
    </div>
  );
}

export default function RichEditor(props: RichEditorProps) {
  const membersRef = useRef(props.members);
  membersRef.current = props.members;
  const submitRef = useRef<() => void>(() => {});
  const [empty, setEmpty] = useState(!props.initialHTML);

  const editor = useEditor({
    immediatelyRender: true,
    shouldRerenderOnTransaction: false,
    extensions: [
      StarterKit.configure({ heading: { levels: [2, 3] }, link: { openOnClick: false }, underline: false }),
      Placeholder.configure({ placeholder: props.placeholder ?? "" }),
      MemberMention.configure({
        HTMLAttributes: { class: "mention" },
        renderText: ({ node }) => `@${node.attrs.label ?? node.attrs.id}`,
        suggestion: {
          char: "@",
          items: ({ query }: { query: string }): MentionItem[] => {
            const q = query.toLowerCase();
            return membersRef.current
              .filter((m) => m.status === "active" && (m.name.toLowerCase().includes(q) || m.email.toLowerCase().includes(q)))
              .slice(0, 8)
              .map((m) => ({ id: m.id, label: m.name, email: m.email }));
          },
          render: mentionRenderer,
        },
      }),
    ],
    content: props.initialHTML || "",
    autofocus: props.autoFocus ? "end" : false,
    editorProps: {
      attributes: { role: "textbox", "aria-multiline": "true", "aria-label": props.label },
      handleKeyDown: (_view, event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          submitRef.current();
          return true;
        }
        return false;
      },
    },
    onUpdate: ({ editor: e }) => setEmpty(e.isEmpty),
  });

  async function submit() {
    if (!editor || props.pending) return;
    const md = docToMarkdown(editor.getJSON() as PMNode);
    const ok = await props.onSubmit(md);
    if (ok !== false && props.clearOnSubmit) {
      editor.commands.clearContent(true);
      setEmpty(true);
    }
  }
  submitRef.current = () => void submit();

  useEffect(() => () => editor?.destroy(), [editor]);

  return (
    <div>
      <div className="editor">
        {editor && <Toolbar editor={editor} label={props.label} />}
        <EditorContent editor={editor} />
      </div>
      {props.children}
      <div className="form-actions">
        <button type="button" className="btn-primary" onClick={() => void submit()} disabled={props.pending || (props.clearOnSubmit && empty && !props.allowEmpty)}>
          {props.pending ? "Saving…" : props.submitLabel}
        </button>
        {props.onCancel && (
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
        )}
        <span className="muted small hide-narrow">Ctrl+Enter to {props.submitLabel.toLowerCase()} · @ to mention</span>
      </div>
    </div>
  );
}
