// The frame around every signed-in screen: top bar with branding, navigation,
// user menu. Nav entries of features whose API has not landed stay hidden.

import * as DropdownMenu from "@radix-ui/react-dropdown-menu";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { api } from "../api/client";
import { clearSession, useMe, useUnreadCount, useWorkspace } from "../api/queries";
import { enabled, type Feature } from "../features";
import { applyBranding } from "../lib/brand";
import { useLiveConnection } from "../lib/live";
import { Avatar } from "./ui";
import { SecurityBanners } from "./SecurityBanners";
import { useToast } from "./toast";

interface NavItem {
  to: string;
  label: string;
  end?: boolean;
  feature?: Feature;
  adminOnly?: boolean;
}

export const NAV: NavItem[] = [
  { to: "/", label: "Home", end: true },
  { to: "/my-tasks", label: "My tasks" },
  { to: "/projects", label: "Projects" },
  { to: "/activity", label: "Activity" },
  { to: "/search", label: "Search", feature: "search" },
  { to: "/inbox", label: "Inbox", feature: "notifications" },
  { to: "/status-updates", label: "Status updates" },
  { to: "/teams", label: "Teams", adminOnly: true },
  { to: "/people", label: "People" },
  { to: "/trash", label: "Trash" },
  { to: "/settings", label: "Workspace settings", adminOnly: true },
  { to: "/audit", label: "Audit log", adminOnly: true },
];

/** Ends this session and goes to sign-in. */
export function useSignOut() {
  const nav = useNavigate();
  const qc = useQueryClient();
  const { toastError } = useToast();
  return async function signOut() {
    try {
      await api("/auth/logout", { method: "POST" });
    } catch (e) {
      toastError(e, "sign out");
    }
    clearSession(qc);
    applyBranding(null);
    nav("/signin", { replace: true });
  };
}

export function Shell() {
  const me = useMe();
  const ws = useWorkspace();
  const [menuOpen, setMenuOpen] = useState(false);
  const loc = useLocation();
  const nav = useNavigate();
  const signOut = useSignOut();
  const isAdmin = me.data?.role === "owner" || me.data?.role === "admin";
  const qc = useQueryClient();
  useLiveConnection(qc, me.data?.id);
  const unread = useUnreadCount(enabled("notifications") && !!me.data);
  const unreadCount = unread.data ?? 0;

  useEffect(() => {
    if (ws.data) applyBranding(ws.data.branding);
  }, [ws.data]);
  useEffect(() => setMenuOpen(false), [loc.pathname]);
  useEffect(() => {
    if (!menuOpen) return;
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && setMenuOpen(false);
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [menuOpen]);
  useEffect(() => {
    document.title = ws.data ? `${ws.data.name} · TeamFlow` : "TeamFlow";
  }, [ws.data]);

  const items = NAV.filter((i) => (!i.feature || enabled(i.feature)) && (!i.adminOnly || isAdmin));
  const logo = ws.data?.branding.logo_url;

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button type="button" className="menu-toggle icon-btn btn-ghost" aria-expanded={menuOpen} aria-controls="sidebar" onClick={() => setMenuOpen((o) => !o)}>
          <span aria-hidden="true">☰</span>
          <span className="visually-hidden">Menu</span>
        </button>
        <NavLink to="/" className="brand">
          {logo ? <img className="logo-img" src={logo} alt="" /> : <span className="logo-mark" aria-hidden="true">{(ws.data?.name ?? "T").slice(0, 1).toUpperCase()}</span>}
          <span>{ws.data?.name ?? "TeamFlow"}</span>
        </NavLink>
        <span className="spacer" />
        {enabled("notifications") && me.data && (
          <NavLink to="/inbox" className="inbox-link btn-ghost" aria-label={unreadCount ? `Inbox, ${unreadCount} unread` : "Inbox, nothing unread"} data-testid="inbox-badge" data-unread={unreadCount}>
            <svg aria-hidden="true" width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round">
              <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" />
              <path d="M13.73 21a2 2 0 0 1-3.46 0" />
            </svg>
            {unreadCount > 0 && (
              <span className="badge badge-accent unread-badge" aria-hidden="true">
                {unreadCount > 99 ? "99+" : unreadCount}
              </span>
            )}
          </NavLink>
        )}
        {me.data && (
          <DropdownMenu.Root>
            <DropdownMenu.Trigger asChild>
              <button type="button" className="btn-ghost">
                <Avatar name={me.data.name} />
                <span className="user-name">{me.data.name}</span>
                <span className="visually-hidden">, account menu</span>
              </button>
            </DropdownMenu.Trigger>
            <DropdownMenu.Portal>
              <DropdownMenu.Content className="dropdown" align="end" sideOffset={6}>
                <DropdownMenu.Label className="dropdown-label">
                  {me.data.email} · {me.data.role}
                </DropdownMenu.Label>
                <DropdownMenu.Item onSelect={() => nav("/profile")}>Profile</DropdownMenu.Item>
                <DropdownMenu.Item onSelect={() => nav("/profile#security")}>Security</DropdownMenu.Item>
                <DropdownMenu.Item onSelect={signOut}>Sign out</DropdownMenu.Item>
              </DropdownMenu.Content>
            </DropdownMenu.Portal>
          </DropdownMenu.Root>
        )}
      </header>
      <nav id="sidebar" className={`sidebar${menuOpen ? " open" : ""}`} aria-label="Main">
        <ul>
          {items.map((i) => (
            <li key={i.to}>
              <NavLink to={i.to} end={i.end}>
                {i.label}
                {i.to === "/inbox" && unreadCount > 0 && (
                  <>
                    {" "}
                    <span className="badge badge-accent">{unreadCount}</span>
                    <span className="visually-hidden"> unread</span>
                  </>
                )}
              </NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" className="main" tabIndex={-1}>
        {me.data && <SecurityBanners me={me.data} workspaceName={ws.data?.name} />}
        <Outlet />
      </main>
    </div>
  );
}
