import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Attachment, Comment, Project, Task } from "../api/types";
import { Comments, filesOnlyBody } from "./Comments";
import { ToastProvider } from "./toast";

const json = (status: number, body?: unknown) => new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

const task = { id: "t1", key: "WEB-1", project_id: "p1" } as Task;
const project = { id: "p1", role: "contributor", statuses: [] } as unknown as Project;
const comment = (p: Partial<Comment>): Comment =>
  ({ id: "c", task_id: "t1", parent_id: null, author_id: "me", body: "x", body_html: "<p>x</p>", edited: false, created_at: "2030-05-01T10:00:00Z", updated_at: "2030-05-01T10:00:00Z", version: 1, ...p }) as Comment;
const att = (p: Partial<Attachment>): Attachment => ({
  id: "a",
  task_id: "t1",
  comment_id: null,
  name: "file.txt",
  content_type: "text/plain",
  size: 1234,
  kind: "file",
  duration_ms: null,
  inline: false,
  sha256: "x",
  has_thumbnail: false,
  uploaded_by: "me",
  created_at: "2030-05-01T10:00:00Z",
  ...p,
});

/** Uploads go through XMLHttpRequest: this one answers at once with the attachment. */
class InstantXHR {
  static sent: { url: string; body: FormData }[] = [];
  url = "";
  status = 0;
  statusText = "";
  responseText = "";
  withCredentials = false;
  upload = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  open(_m: string, u: string) {
    this.url = u;
  }
  setRequestHeader() {}
  abort() {}
  send(b: FormData) {
    InstantXHR.sent.push({ url: this.url, body: b });
    const f = b.get("file") as File;
    this.status = 201;
    this.responseText = JSON.stringify(att({ id: "up1", comment_id: "c9", name: f.name, size: f.size }));
    setTimeout(() => this.onload?.(), 0);
  }
}

let posts: unknown[] = [];
function serve(comments: Comment[], attachments: Attachment[]) {
  posts = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init: RequestInit = {}) => {
      if (url === "/api/v1/me") return json(200, { id: "me", name: "Me", role: "member" });
      if (url.startsWith("/api/v1/members")) return json(200, { items: [{ id: "me", name: "Me", status: "active" }, { id: "other", name: "Olga Other", status: "active" }], next_cursor: "" });
      if (url.startsWith("/api/v1/tasks/t1/attachments")) return json(200, { items: attachments, next_cursor: "" });
      if (url.startsWith("/api/v1/tasks/t1/comments") && init.method === "POST") {
        const body = JSON.parse(String(init.body));
        posts.push(body);
        return json(201, comment({ id: "c9", body: body.body, body_html: `<p>${body.body}</p>` }));
      }
      if (url.startsWith("/api/v1/tasks/t1/comments")) return json(200, { items: comments, next_cursor: "" });
      return json(404, { status: 404, code: "not_found" });
    }),
  );
}

function show() {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter>
        <ToastProvider>
          <Comments task={task} project={project} canComment />
        </ToastProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("comment attachments", () => {
  it("shows each comment's files inline: thumbnails, players, download; Add files on one's own comments only", async () => {
    serve(
      [comment({ id: "c1", author_id: "me" }), comment({ id: "c2", author_id: "other" })],
      [
        att({ id: "1", name: "task-level.txt" }),
        att({ id: "2", name: "shot.png", comment_id: "c1", content_type: "image/png", has_thumbnail: true }),
        att({ id: "3", name: "Voice message.webm", comment_id: "c2", uploaded_by: "other", content_type: "audio/webm", kind: "audio_message", duration_ms: 3000 }),
      ],
    );
    show();
    const mine = await screen.findByRole("list", { name: "Files on Me's comment" });
    expect(within(mine).getAllByRole("listitem")).toHaveLength(1);
    expect(mine.querySelector("img.attachment-thumb")?.getAttribute("src")).toBe("/api/v1/attachments/2/thumbnail");
    expect(within(mine).getByRole("button", { name: "Delete shot.png" })).toBeTruthy();
    const theirs = screen.getByRole("list", { name: "Files on Olga Other's comment" });
    expect(theirs.querySelector("audio[controls]")?.getAttribute("aria-label")).toBe("Voice message from Olga Other, 0:03");
    expect(within(theirs).queryByRole("button", { name: /Delete/ })).toBeNull();
    expect(screen.queryByText("task-level.txt")).toBeNull();
    // Only the author adds files to a comment.
    const add = screen.getAllByRole("button", { name: "Add files" });
    expect(add).toHaveLength(1);
    expect(add[0].closest("[data-comment-id]")?.getAttribute("data-comment-id")).toBe("c1");
    fireEvent.click(add[0]);
    expect(screen.getByRole("group", { name: "Add files to your comment" })).toBeTruthy();
  });

  it("files picked in the composer are sent to the new comment once it is posted", async () => {
    InstantXHR.sent = [];
    vi.stubGlobal("XMLHttpRequest", InstantXHR);
    serve([], []);
    show();
    await screen.findByText("No comments yet.");
    const input = await screen.findByTestId("comment-file-input");
    const file = new File(["hello"], "notes.txt", { type: "text/plain" });
    fireEvent.change(input, { target: { files: [file] } });
    const staged = await screen.findByRole("list", { name: "To send with the comment" });
    expect(within(staged).getByText("notes.txt")).toBeTruthy();
    const send = screen.getByRole("button", { name: "Comment" }) as HTMLButtonElement;
    expect(send.disabled).toBe(false);
    fireEvent.click(send);
    await waitFor(() => expect(InstantXHR.sent).toHaveLength(1));
    expect(posts).toEqual([{ body: "1 attachment" }]);
    expect(InstantXHR.sent[0].url).toBe("/api/v1/comments/c9/attachments");
    expect((InstantXHR.sent[0].body.get("file") as File).name).toBe("notes.txt");
    await waitFor(() => expect(screen.queryByRole("list", { name: "To send with the comment" })).toBeNull());
  });

  it("names a comment that carries only files", () => {
    expect(filesOnlyBody([{ kind: "audio_message" }])).toBe("Voice message");
    expect(filesOnlyBody([{ kind: "video_message" }])).toBe("Video message");
    expect(filesOnlyBody([{ kind: "file" }])).toBe("1 attachment");
    expect(filesOnlyBody([{}, { kind: "audio_message" }])).toBe("2 attachments");
  });
});
