// Builds the web interface into the Python package, where `capmon serve` serves it at /ui/.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  build: {
    outDir: "../src/capmon/service/web",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 1200,
    sourcemap: false,
    rollupOptions: {
      output: {
        // MapLibre's worker is an ES module: serve it as .js so that every server's MIME table
        // knows it as JavaScript (module workers refuse other types).
        assetFileNames: (asset) =>
          (asset.names[0] ?? "").endsWith(".mjs") ? "assets/[name]-[hash].js" : "assets/[name]-[hash][extname]",
      },
    },
  },
  server: {
    // `npm run dev` forwards the API to a `capmon serve` on the default port.
    proxy: Object.fromEntries(
      ["/auth", "/sites", "/processes", "/jobs", "/stac", "/tiles", "/conformance"].map((p) => [
        p,
        "http://127.0.0.1:8000",
      ]),
    ),
  },
});
