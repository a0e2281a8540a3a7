// Every screen and its URL. Heavy screens are split off with lazy imports so
// the first screen stays small; sign-in and the app frame load first.

import type { QueryClient } from "@tanstack/react-query";
import { Suspense, type ReactNode } from "react";
import { api, fetchAll } from "./api/client";
import { keys } from "./api/queries";
import type { Project, Task } from "./api/types";
import { loadBoard } from "./lib/boardData";
import { lazyWithPreload } from "./lib/lazy";
import { Navigate, Route, Routes, useParams } from "react-router";
import { Loading } from "./components/ui";
import { Shell } from "./components/Shell";
import { SignIn } from "./screens/SignIn";
import { RequireSession } from "./components/RequireSession";

const Signup = lazyWithPreload(() => import("./screens/Signup"));
const Setup = lazyWithPreload(() => import("./screens/Setup"));
const InviteAccept = lazyWithPreload(() => import("./screens/InviteAccept"));
const Home = lazyWithPreload(() => import("./screens/Home"));
const Projects = lazyWithPreload(() => import("./screens/Projects"));
const ProjectFrame = lazyWithPreload(() => import("./screens/ProjectFrame"));
const Board = lazyWithPreload(() => import("./screens/Board"));
const ListView = lazyWithPreload(() => import("./screens/ListView"));
const ProjectActivity = lazyWithPreload(() => import("./screens/ProjectActivity"));
const TaskDetail = lazyWithPreload(() => import("./screens/TaskDetail"));
const MyTasks = lazyWithPreload(() => import("./screens/MyTasks"));
const Activity = lazyWithPreload(() => import("./screens/Activity"));
const People = lazyWithPreload(() => import("./screens/People"));
const Settings = lazyWithPreload(() => import("./screens/Settings"));
const Profile = lazyWithPreload(() => import("./screens/Profile"));
const Trash = lazyWithPreload(() => import("./screens/Trash"));
const Audit = lazyWithPreload(() => import("./screens/Audit"));
const Inbox = lazyWithPreload(() => import("./screens/Inbox"));
const Search = lazyWithPreload(() => import("./screens/Search"));
const StatusUpdates = lazyWithPreload(() => import("./screens/StatusUpdates"));
const Teams = lazyWithPreload(() => import("./screens/Teams"));
const EnrolRequired = lazyWithPreload(() => import("./screens/EnrolRequired"));
const ForgotPassword = lazyWithPreload<object>(() => import("./screens/AccountLinks").then((m) => ({ default: m.ForgotPassword })));
const ResetPassword = lazyWithPreload<object>(() => import("./screens/AccountLinks").then((m) => ({ default: m.ResetPassword })));
const MagicLink = lazyWithPreload<object>(() => import("./screens/AccountLinks").then((m) => ({ default: m.MagicLink })));
const VerifyEmail = lazyWithPreload<object>(() => import("./screens/AccountLinks").then((m) => ({ default: m.VerifyEmail })));

const SCREENS = [Home, Projects, ProjectFrame, Board, ListView, ProjectActivity, TaskDetail, MyTasks, Activity, People, Settings, Profile, Trash, Audit, Inbox, Search, StatusUpdates, Teams];

/**
 * Starts loading what the screen at path needs — its code and its data — at
 * once and in parallel, instead of one after the other as each component
 * mounts. Called at start-up for the first URL.
 */
export function preloadRoute(path: string, qc: QueryClient): void {
  let m = /^\/projects\/([^/]+)(?:\/(board|list|activity))?\/?$/.exec(path);
  if (m) {
    const id = decodeURIComponent(m[1]);
    void ProjectFrame.preload();
    const view = m[2] ?? "board";
    void (view === "board" ? Board : view === "list" ? ListView : ProjectActivity).preload();
    void qc.prefetchQuery({ queryKey: keys.members, queryFn: () => fetchAll("/members") });
    void qc
      .fetchQuery({ queryKey: keys.project(id), queryFn: () => api<Project>(`/projects/${encodeURIComponent(id)}`), staleTime: 30_000 })
      .then((p) => (view === "board" ? qc.prefetchQuery({ queryKey: keys.board(id), queryFn: ({ signal }) => loadBoard(p, signal) }) : undefined))
      .catch(() => {});
    return;
  }
  m = /^\/tasks\/([^/]+)\/?$/.exec(path);
  if (m) {
    const id = decodeURIComponent(m[1]);
    void TaskDetail.preload();
    void import("./components/RichEditor");
    void import("./components/Attachments");
    void qc.prefetchQuery({ queryKey: keys.task(id), queryFn: () => api<Task>(`/tasks/${encodeURIComponent(id)}`) });
    return;
  }
  const screen = { "/": Home, "/projects": Projects, "/my-tasks": MyTasks, "/activity": Activity, "/people": People, "/settings": Settings, "/profile": Profile, "/trash": Trash, "/audit": Audit, "/inbox": Inbox, "/search": Search, "/status-updates": StatusUpdates, "/teams": Teams, "/enrol-2fa": EnrolRequired }[path];
  void screen?.preload();
}

/** Once the first screen is up, fetch the other screens' code while the browser is idle. */
export function preloadAllScreens(): void {
  const run = () => SCREENS.forEach((s) => void s.preload().catch(() => {}));
  const w = window as Window & { requestIdleCallback?: (cb: () => void, o?: { timeout: number }) => number };
  if (w.requestIdleCallback) w.requestIdleCallback(run, { timeout: 3000 });
  else setTimeout(run, 1500);
}

function Lazy({ children }: { children: ReactNode }) {
  return <Suspense fallback={<Loading />}>{children}</Suspense>;
}

function ProjectIndex() {
  const { projectId } = useParams();
  return <Navigate to={`/projects/${projectId}/board`} replace />;
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/signin" element={<SignIn />} />
      <Route path="/signup" element={<Lazy><Signup /></Lazy>} />
      <Route path="/setup" element={<Lazy><Setup /></Lazy>} />
      <Route path="/invite/:token" element={<Lazy><InviteAccept /></Lazy>} />
      <Route path="/forgot-password" element={<Lazy><ForgotPassword /></Lazy>} />
      <Route path="/reset-password" element={<Lazy><ResetPassword /></Lazy>} />
      <Route path="/magic-link" element={<Lazy><MagicLink /></Lazy>} />
      <Route path="/verify-email" element={<Lazy><VerifyEmail /></Lazy>} />
      <Route
        path="/enrol-2fa"
        element={
          <RequireSession enrolment>
            <Lazy>
              <EnrolRequired />
            </Lazy>
          </RequireSession>
        }
      />
      <Route
        element={
          <RequireSession>
            <Shell />
          </RequireSession>
        }
      >
        <Route index element={<Lazy><Home /></Lazy>} />
        <Route path="projects" element={<Lazy><Projects /></Lazy>} />
        <Route path="projects/:projectId" element={<Lazy><ProjectFrame /></Lazy>}>
          <Route index element={<ProjectIndex />} />
          <Route path="board" element={<Lazy><Board /></Lazy>} />
          <Route path="list" element={<Lazy><ListView /></Lazy>} />
          <Route path="activity" element={<Lazy><ProjectActivity /></Lazy>} />
        </Route>
        <Route path="tasks/:taskId" element={<Lazy><TaskDetail /></Lazy>} />
        <Route path="my-tasks" element={<Lazy><MyTasks /></Lazy>} />
        <Route path="activity" element={<Lazy><Activity /></Lazy>} />
        <Route path="people" element={<Lazy><People /></Lazy>} />
        <Route path="settings" element={<Lazy><Settings /></Lazy>} />
        <Route path="profile" element={<Lazy><Profile /></Lazy>} />
        <Route path="trash" element={<Lazy><Trash /></Lazy>} />
        <Route path="audit" element={<Lazy><Audit /></Lazy>} />
        <Route path="inbox" element={<Lazy><Inbox /></Lazy>} />
        <Route path="search" element={<Lazy><Search /></Lazy>} />
        <Route path="status-updates" element={<Lazy><StatusUpdates /></Lazy>} />
        <Route path="teams" element={<Lazy><Teams /></Lazy>} />
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}

function NotFound() {
  return (
    <div className="state">
      <h1>Page not found</h1>
      <p>
        <a href="/">Go to the start page</a>
      </p>
    </div>
  );
}
