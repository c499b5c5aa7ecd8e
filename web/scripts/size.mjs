// Prints the production build's JavaScript size, gzipped, and fails over the budget
// (issue 12: under 200 kB). Run after `vite build`.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET = 200 * 1024;
const dist = new URL("../dist/", import.meta.url).pathname;

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

const scripts = files(dist).filter((f) => f.endsWith(".js") || f.endsWith(".mjs"));
if (scripts.length === 0) {
  console.error(`no JavaScript in ${dist}: did the build run?`);
  process.exit(1);
}
let total = 0;
for (const file of scripts) {
  const size = gzipSync(readFileSync(file), { level: 9 }).length;
  total += size;
  console.log(`  ${relative(dist, file)}: ${(size / 1024).toFixed(1)} kB gzip`);
}
const verdict = total <= BUDGET ? "within" : "OVER";
console.log(
  `web app JavaScript: ${(total / 1024).toFixed(1)} kB gzip (${verdict} the ${BUDGET / 1024} kB budget)`,
);
if (total > BUDGET) process.exit(1);
