// Regenerate the npm package's TypeScript declarations from the JSDoc:
//
//     node tests/js/declarations.mjs
//
// tsc writes every declaration to a temporary folder; only rtt-client.d.mts (the types of
// the package's entry, rtt-client.mjs) is kept, beside it. tests/core/test_js_unit.py
// fails when the committed file differs from a fresh generation.

import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const tsc = join(root, "tests/node/node_modules/typescript/bin/tsc");
const out = mkdtempSync(join(tmpdir(), "rtt-declarations-"));
try {
  execFileSync(process.execPath, [tsc, "--project", "tests/js/tsconfig.declarations.json", "--outDir", out], {
    cwd: root,
    stdio: "inherit",
  });
  copyFileSync(join(out, "rtt-client.d.mts"), join(root, "packages/rtt-core/src/rtt/browser/rtt-client.d.mts"));
} finally {
  rmSync(out, { recursive: true, force: true });
}
