import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";
import { ApiError } from "./api/client";
import { AppProblems } from "./components/AppProblems";
import { ToastProvider } from "./components/toast";
import { applyRememberedBranding } from "./lib/brand";
import { AppRoutes, preloadAllScreens, preloadRoute } from "./routes";
import "./styles.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 15_000,
      // A 4xx will not get better by asking again; network and 5xx errors may.
      retry: (count, err) => !(err instanceof ApiError && err.status >= 400 && err.status < 500) && count < 2,
      refetchOnWindowFocus: true,
    },
    mutations: { retry: false },
  },
});

applyRememberedBranding();

const PUBLIC = /^\/(signin|signup|setup|invite|forgot-password|reset-password|magic-link|verify-email)(\/|$)/;
if (!PUBLIC.test(location.pathname)) preloadRoute(location.pathname, queryClient);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <ToastProvider>
          <AppProblems />
          <AppRoutes />
        </ToastProvider>
      </BrowserRouter>
    </QueryClientProvider>
  </StrictMode>,
);

preloadAllScreens();
