import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The build is embedded in the teamflow binary and checked by CI with
// `git diff ui/dist`, so it must be byte-for-byte reproducible: only
// content hashes in names, no timestamps, no absolute paths.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8095",
      "/readyz": "http://127.0.0.1:8095",
    },
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.{ts,tsx}"],
    pool: "threads",
  },
});
