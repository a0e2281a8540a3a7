import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, render, screen, within } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Attachment, Project, Task } from "../api/types";
import Attachments, { describeType } from "./Attachments";
import { ToastProvider } from "./toast";

const json = (status: number, body?: unknown) => new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

const task = { id: "t1", key: "WEB-1", project_id: "p1" } as Task;
const project = (role: Project["role"]) => ({ id: "p1", role, statuses: [] }) as unknown as Project;
const att = (p: Partial<Attachment>): Attachment => ({
  id: "a",
  task_id: "t1",
  comment_id: null,
  name: "file.txt",
  content_type: "text/plain; charset=utf-8",
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

function serve(items: Attachment[], status = 200) {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string) => {
      if (url === "/api/v1/me") return json(200, { id: "me", name: "Me", role: "member" });
      if (url.startsWith("/api/v1/members")) return json(200, { items: [{ id: "me", name: "Me" }, { id: "other", name: "Olga Other" }], next_cursor: "" });
      if (url.startsWith("/api/v1/tasks/t1/attachments")) return status === 200 ? json(200, { items, next_cursor: "" }) : json(status, { status, code: "internal_error", detail: "the store is down" });
      return json(404, { status: 404, code: "not_found" });
    }),
  );
}

function show(role: Project["role"], canUpload: boolean) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter>
        <ToastProvider>
          <Attachments task={task} project={project(role)} canUpload={canUpload} />
        </ToastProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("task attachments", () => {
  it("lists files and messages; delete only on one's own uploads; players for recordings", async () => {
    serve([
      att({ id: "1", name: "mine.txt", uploaded_by: "me" }),
      att({ id: "2", name: "theirs.png", uploaded_by: "other", content_type: "image/png", has_thumbnail: true, inline: true }),
      att({ id: "3", name: "Voice message.webm", uploaded_by: "other", content_type: "audio/webm", kind: "audio_message", duration_ms: 4200, inline: true }),
    ]);
    show("contributor", true);
    const list = await screen.findByRole("list", { name: "Attachments" });
    await within(list).findAllByText(/Olga Other/);
    expect(within(list).getAllByRole("listitem")).toHaveLength(3);
    expect(screen.getByRole("button", { name: "Delete mine.txt" })).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Delete theirs.png" })).toBeNull();
    expect(screen.getByRole("link", { name: "Download theirs.png" }).getAttribute("href")).toBe("/api/v1/attachments/2/content");
    expect(document.querySelector('img.attachment-thumb')?.getAttribute("src")).toBe("/api/v1/attachments/2/thumbnail");
    const audio = document.querySelector("audio[controls]");
    expect(audio?.getAttribute("aria-label")).toBe("Voice message from Olga Other, 0:04");
    expect(screen.getByRole("button", { name: "Choose files…" })).toBeTruthy();
  });

  it("a Lead may delete anyone's file; an observer gets no upload controls", async () => {
    serve([att({ id: "2", name: "theirs.png", uploaded_by: "other" })]);
    show("lead", true);
    await screen.findByRole("button", { name: "Delete theirs.png" });
    cleanup();
    serve([att({ id: "2", name: "theirs.png", uploaded_by: "other" })]);
    show("observer", false);
    await screen.findByRole("link", { name: "Download theirs.png" });
    expect(screen.queryByRole("button", { name: "Choose files…" })).toBeNull();
    expect(screen.queryByRole("button", { name: /^Delete/ })).toBeNull();
  });

  it("empty and error states", async () => {
    serve([]);
    show("contributor", true);
    await screen.findByText("No attachments yet");
    cleanup();
    serve([], 500);
    show("contributor", true);
    expect((await screen.findByRole("alert")).textContent).toContain("the store is down");
  });

  it("names content types", () => {
    expect(describeType("image/png")).toBe("PNG image");
    expect(describeType("application/pdf")).toBe("PDF");
    expect(describeType("text/plain; charset=utf-8")).toBe("Text");
    expect(describeType("video/webm")).toBe("WEBM video");
    expect(describeType("application/x-tar")).toBe("TAR");
  });
});
