// The production build lands in dist/, which the gateway serves (GATEWAY_WEB_ROOT).
// `WEB_CAFE_TIME_ZONE` (an IANA zone, default Asia/Seoul) is the cafe's clock: every time the
// app shows or asks for is on it, while the API stays in UTC. A zone this machine does not know
// fails the build, naming the variable.

import { defineConfig, type Plugin } from "vite";

const timeZone = process.env.WEB_CAFE_TIME_ZONE || "Asia/Seoul";
try {
  new Intl.DateTimeFormat("en-US", { timeZone });
} catch {
  throw new Error(`WEB_CAFE_TIME_ZONE: ${JSON.stringify(timeZone)} is not an IANA time zone`);
}

/** Writes dist/build.json: the settings this build was made with. `studycafe up` compares them
 * with its environment to tell a stale build (cli/src/web_app.rs). */
const buildSettings: Plugin = {
  name: "studycafe-build-settings",
  apply: "build",
  generateBundle() {
    this.emitFile({
      type: "asset",
      fileName: "build.json",
      source: `${JSON.stringify({ WEB_CAFE_TIME_ZONE: process.env.WEB_CAFE_TIME_ZONE ?? "" })}\n`,
    });
  },
};

export default defineConfig({
  plugins: [buildSettings],
  define: {
    __CAFE_TIME_ZONE__: JSON.stringify(timeZone),
  },
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against a suite started by `studycafe up` (its gateway).
    proxy: {
      "/api": process.env.WEB_GATEWAY_URL || "http://127.0.0.1:8080",
      "/auth": process.env.WEB_GATEWAY_URL || "http://127.0.0.1:8080",
    },
  },
});
