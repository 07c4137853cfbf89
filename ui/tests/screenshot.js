// Remakes the README's screenshots (ui/screenshot.jpg, ui/screenshot-proof.jpg):
// a fresh `openexec serve`, a few dozen attempts, the page in headless
// Chromium. `node screenshot.js` after `scripts/ui-test` has installed
// playwright-core; OPENEXEC_BIN as for the tests.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const UI = path.resolve(HERE, "..");
const BIN = process.env.OPENEXEC_BIN ?? path.resolve(UI, "..", "target", "debug", "openexec");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "openexec-shot-"));
const child = spawn(BIN, ["serve"], {
  env: {
    PATH: process.env.PATH,
    OPENEXEC_BIND: "127.0.0.1:0",
    OPENEXEC_DB_URL: `sled://${path.join(dir, "data")}`,
    OPENEXEC_PUBLISH_INTERVAL_MS: "0",
    CLAWSHIELD_TENANT_ID: "acme",
    RUST_LOG: "warn",
  },
  stdio: ["ignore", "pipe", "inherit"],
});
const url = await new Promise((resolve) => createInterface({ input: child.stdout }).once("line", (l) => resolve(l.split(" ").pop())));
const post = (body) => fetch(`${url}/execute`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const actions = ["echo", "add", "sha256", "counter", "delete_repo", "echo", "add", "counter"];
for (let i = 0; i < 40; i += 1) {
  const action = actions[i % actions.length];
  const payload = action === "counter" ? { name: "c" } : action === "add" && i % 5 === 0 ? { a: "x" } : { i };
  await post({ action, payload, nonce: `n${i}` });
  if (i % 7 === 0) await post({ action, payload, nonce: `n${i}` });
  await new Promise((resolve) => setTimeout(resolve, 40));
}
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
await page.goto(`${url}/ui`);
await page.waitForSelector("body[data-ready=true]");
await page.click('#entries tbody tr[data-index="13"]');
await page.waitForSelector("#entry-proof svg.proof");
await page.evaluate(() => window.scrollTo(0, 0));
await page.screenshot({ path: path.join(UI, "screenshot.jpg"), type: "jpeg", quality: 80 });
await page.locator("#entry-section").screenshot({ path: path.join(UI, "screenshot-proof.jpg"), type: "jpeg", quality: 80 });
await browser.close();
child.kill("SIGTERM");
await new Promise((resolve) => child.once("exit", resolve));
fs.rmSync(dir, { recursive: true, force: true });
