import type { ReactNode } from "react";

export function AuthFrame({ title, children }: { title: string; children: ReactNode }) {
  return (
    <main className="auth-page">
      <div className="auth-card">
        <div className="auth-brand">
          <span className="logo-mark" aria-hidden="true">
            T
          </span>
          TeamFlow
        </div>
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}
