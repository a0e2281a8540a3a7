// Clean-ups of the server's rendered (already sanitized) Markdown.

/**
 * The API renders `@[Name](user:<id>)` as `@<span class="mention" …>@Name</span>`:
 * the "@" before the link stays as text (engine/markdown.go replaces only the
 * link). Drop that stray "@" so a mention reads "@Name", and so the editor,
 * which starts from this HTML, does not write "@@[Name](…)" back.
 */
export function fixMentionHtml(html: string): string {
  return html.replace(/@(<span class="mention" data-user-id="[0-9a-f-]{36}">)/g, "$1");
}
