// The frame around every signed-in screen: top bar with branding, navigation,
// user menu. Nav entries of features whose API has not landed stay hidden.

import * as DropdownMenu from "@radix-ui/react-dropdown-menu";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { api } from "../api/client";
import { clearSession, useMe, useWorkspace } from "../api/queries";
import { enabled, type Feature } from "../features";
import { applyBranding } from "../lib/brand";
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
