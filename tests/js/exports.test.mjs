// The one export list: rtt-client.mjs names exactly what rtt-client.js puts on
// globalThis.rtt, and each plugin's .mjs entry re-exports it without naming anything.

import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const CORE_DIR = "packages/rtt-core/src/rtt/browser";
// Every plugin's browser folder (packages/<dist>/src/<module>/browser), by the transport its
// rtt-<name>.mjs entry is for: a new plugin is checked as soon as its files exist.
const BROWSER_DIRS = {};
for (const dist of readdirSync(join(root, "packages"))) {
  const src = join(root, "packages", dist, "src");
  if (!existsSync(src)) continue;
  for (const module of readdirSync(src)) {
    const dir = join("packages", dist, "src", module, "browser");
    if (dir === CORE_DIR || !existsSync(join(root, dir))) continue;
    for (const name of readdirSync(join(root, dir))) {
      const entry = /^rtt-(.+)\.mjs$/.exec(name);
      if (entry) BROWSER_DIRS[entry[1]] = dir;
    }
  }
}
// What a plugin's entry exports beyond the core's names.
const EXTRA_EXPORTS = { engineio: ["engineio"], sockjs: ["sockjs"] };

// The files as a server hands them out: every browser folder's scripts in one /rtt/.
const served = mkdtempSync(join(tmpdir(), "rtt-served-"));
after(() => rmSync(served, { recursive: true, force: true }));
for (const dir of [CORE_DIR, ...Object.values(BROWSER_DIRS)]) {
  for (const name of readdirSync(join(root, dir))) {
    if (/\.m?js$/.test(name)) copyFileSync(join(root, dir, name), join(served, name));
  }
}

const names = (module) => Object.keys(module).filter((name) => name !== "default");

test("rtt-client.mjs exports what rtt-client.js defines, and the same objects", async () => {
  const core = await import(pathToFileURL(join(served, "rtt-client.mjs")).href);
  const rtt = globalThis.rtt;
  assert.deepEqual(names(core).sort(), Object.keys(rtt).sort());
  assert.equal(names(core).length, 19);
  assert.equal(core.default, rtt);
  for (const name of names(core)) assert.equal(core[name], rtt[name], name);
});

test("each plugin's entry re-exports the core's names and adds only its own", async () => {
  const core = await import(pathToFileURL(join(served, "rtt-client.mjs")).href);
  // The first-party plugins are always there.
  for (const plugin of ["ws", "engineio", "sockjs"]) assert.ok(plugin in BROWSER_DIRS, plugin);
  for (const plugin of Object.keys(BROWSER_DIRS)) {
    const extra = EXTRA_EXPORTS[plugin] ?? [];
    const entry = await import(pathToFileURL(join(served, `rtt-${plugin}.mjs`)).href);
    assert.deepEqual(names(entry).sort(), [...names(core), ...extra].sort(), plugin);
    assert.equal(entry.default, core.default, plugin);
    for (const name of extra) assert.equal(entry[name], globalThis.rtt[name], `${plugin}: ${name}`);
    // The list is written once: no entry spells out a core name.
    const source = readFileSync(join(root, BROWSER_DIRS[plugin], `rtt-${plugin}.mjs`), "utf8");
    const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "").replace(/"[^"]*"/g, '""');
    for (const name of names(core)) {
      assert.ok(!new RegExp(`\\b${name}\\b`).test(code), `rtt-${plugin}.mjs names ${name}`);
    }
  }
  // Each entry ran its adapter, which registered its transport.
  for (const name of Object.keys(BROWSER_DIRS)) {
    assert.equal(core.client(name, "http://127.0.0.1:1/").transport, name);
  }
});
