// The auditor's page in a real headless Chromium, against a real
// `openexec serve` on a loopback port. Run by scripts/ui-test, which
// installs Chromium and playwright-core and writes the verifier cases
// (artifacts/cases.json, from gen_cases.py) first.
//
// Env: OPENEXEC_BIN (default target/debug/openexec), CHROMIUM (default
// /usr/bin/chromium), UI_CASES (default artifacts/cases.json).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");
const BIN = process.env.OPENEXEC_BIN ?? path.join(REPO, "target", "debug", "openexec");
const ARTIFACTS = path.join(HERE, "artifacts");
const CASES = process.env.UI_CASES ?? path.join(ARTIFACTS, "cases.json");
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];
// What the hostile entries carry: each would set window.__pwned if it ran.
const HOSTILE_TENANT = `<img src=x onerror="window.__pwned='tenant'">`;
const HOSTILE_NONCES = [
  "<script>window.__pwned='nonce1'</script>",
  "<img/src=x/onerror=window.__pwned='nonce2'>",
  "javascript:window.__pwned='nonce3'",
  "<svg/onload=window.__pwned='nonce4'>",
  "\"><iframe/src=javascript:window.__pwned='nonce5'>",
];
const HOSTILE_PAYLOAD = { msg: "<script>window.__pwned='payload'</script>", html: "<b onmouseover=alert(1)>x</b>" };
// The lines of `openexec verify` that quote a JSON parser's own words,
// compared up to those words (as the Python cross-check does).
const PARSER_TEXT = /(entry is not valid JSON of the entry shape: |receipt is not JSON: |receipt has the wrong shape: |consistency proof: (?!hash is not valid|hash must be)).*/;
const normalize = (lines) => lines.map((l) => l.replace(PARSER_TEXT, "$1…")).join("\n");

let server;
let base;
let dataDir;
let browser;
const recorded = { executed: 0, rejected: 0, responses: [] };

async function startServer(env) {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "openexec-ui-"));
  const child = spawn(BIN, ["serve"], {
    env: {
      PATH: process.env.PATH,
      OPENEXEC_BIND: "127.0.0.1:0",
      OPENEXEC_DB_URL: `sled://${path.join(dataDir, "data")}`,
      OPENEXEC_WORKERS: "2",
      OPENEXEC_PUBLISH_INTERVAL_MS: "0",
      RUST_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`openexec serve exited ${code}`)));
    lines.once("line", (line) => {
      const m = /^openexec listening on (\S+)$/.exec(line.trim());
      if (m) resolve(m[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
  });
  return { child, url };
}

async function execute(body) {
  const r = await fetch(`${base}/execute`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  recorded.responses.push(answer);
  if (answer.outcome === "executed") recorded.executed += 1;
  if (answer.outcome === "rejected") recorded.rejected += 1;
  return answer;
}

/** `openexec verify` on files written from texts; its lines and exit code. */
function cliVerify(files, args) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "openexec-ui-cli-"));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const done = spawnSync(BIN, ["verify", ...args], { cwd: dir, encoding: "utf8" });
  fs.rmSync(dir, { recursive: true, force: true });
  return { code: done.status, lines: done.stdout.split("\n").filter((l) => l) };
}

/** A page with console errors, page errors, dialogs and CSP violations recorded. */
async function openPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = { console: [], errors: [], dialogs: [] };
  page.on("console", (m) => {
    if (m.type() === "error") seen.console.push(m.text());
  });
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  page.on("dialog", (d) => {
    seen.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  await page.goto(`${base}/ui`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  return { page, context, seen };
}

async function assertClean(page, seen) {
  assert.deepEqual(seen.console, [], "no console errors");
  assert.deepEqual(seen.errors, [], "no page errors");
  assert.deepEqual(seen.dialogs, [], "no dialog");
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], "no CSP violation");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no injected script ran");
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  ({ child: server, url: base } = await startServer({ CLAWSHIELD_TENANT_ID: HOSTILE_TENANT }));
  for (let i = 0; i < 7; i += 1) await execute({ action: "echo", payload: { n: i }, nonce: `echo-${i}` });
  for (let i = 0; i < 3; i += 1) await execute({ action: "add", payload: { a: i, b: 1 }, nonce: `add-${i}` });
  for (let i = 0; i < 4; i += 1) await execute({ action: "no.such-action", nonce: `nope-${i}` });
  await execute({ action: "echo", payload: { n: 0 }, nonce: "echo-0" }); // a replay
  for (const nonce of HOSTILE_NONCES) await execute({ action: "echo", payload: HOSTILE_PAYLOAD, nonce });
  await execute({ action: "x<script>", nonce: "bad-action" }); // refused before recording
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once("exit", resolve));
    server.kill("SIGTERM");
    await exited;
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

test("the page loads under its CSP and shows the log, its checkpoint and entries", async () => {
  const { page, context, seen } = await openPage();
  const vkey = (await (await fetch(`${base}/ledger/key`)).text()).trim();
  const health = await (await fetch(`${base}/health`)).json();
  const size = health.ledger.size;
  assert.equal(await page.textContent("#origin"), vkey.split("+")[0]);
  assert.equal(await page.textContent("#vkey"), vkey);
  assert.equal(await page.inputValue("#v-key"), vkey);
  assert.equal(await page.textContent("#cp-size"), String(size));
  assert.equal(await page.textContent("#cp-root"), health.ledger.root);
  assert.match(await page.textContent("#cp-sig"), /^valid/);
  assert.match(await page.textContent("#cosig-note"), /No witness has cosigned/);
  const indexes = await page.$$eval("#entries tbody tr", (rows) => rows.map((r) => Number(r.dataset.index)));
  assert.equal(indexes.length, size);
  assert.deepEqual(indexes, [...indexes].sort((a, b) => b - a), "newest first");
  assert.equal(indexes[0], size - 1);
  await page.screenshot({ path: path.join(ARTIFACTS, "page.png"), fullPage: true });
  await assertClean(page, seen);
  await context.close();
});

test("entries filter by outcome and by action", async () => {
  const { page, context, seen } = await openPage();
  await page.selectOption("#filter-outcome", "rejected");
  await page.click("#filter-apply");
  await page.waitForFunction(() => [...document.querySelectorAll("#entries tbody tr td:nth-child(3)")].every((td) => td.textContent === "rejected"));
  const outcomes = await page.$$eval("#entries tbody tr td:nth-child(3)", (tds) => tds.map((t) => t.textContent));
  assert.equal(outcomes.length, recorded.rejected);
  await page.selectOption("#filter-outcome", "");
  await page.fill("#filter-action", "add");
  await page.click("#filter-apply");
  await page.waitForFunction(() => [...document.querySelectorAll("#entries tbody tr td:nth-child(4)")].every((td) => td.textContent === "add"));
  assert.equal(await page.$$eval("#entries tbody tr", (r) => r.length), 3);
  await assertClean(page, seen);
  await context.close();
});

test("an entry's inclusion proof is verified and drawn", async () => {
  const { page, context, seen } = await openPage();
  const size = Number(await page.textContent("#cp-size"));
  for (const index of [0, 5, size - 1]) {
    await page.click(`#entries tbody tr[data-index="${index}"]`);
    await page.waitForSelector(`#entry-proof svg.proof`);
    await page.waitForFunction((i) => document.querySelector("#entry-index").textContent === String(i), index);
    const verdict = await page.textContent("#entry-verdict");
    assert.match(verdict, new RegExp(`^OK: entry ${index} \\(`), verdict);
    assert.match(verdict, new RegExp(`at tree size ${size}$`));
    const proof = await (await fetch(`${base}/ledger/proof/inclusion?index=${index}&tree_size=${size}`)).json();
    await page.waitForFunction((n) => document.querySelector("#entry-proof svg.proof")?.dataset.steps === String(n), proof.hashes.length);
    const boxes = await page.$$eval("#entry-proof svg .node", (n) => n.length);
    assert.equal(boxes, 1 + 2 * proof.hashes.length, "the leaf, then a sibling and a node per level");
  }
  await assertClean(page, seen);
  await context.close();
});

test("the plot counts executions and refusals", async () => {
  const { page, context, seen } = await openPage();
  const count = (kind) => page.$$eval(`#activity svg rect.bar.${kind}`, (bars) => bars.reduce((n, b) => n + Number(b.dataset.count), 0));
  assert.equal(await count("executed"), recorded.executed);
  assert.equal(await count("rejected"), recorded.rejected);
  assert.equal(await count("other"), 1, "the replay");
  await assertClean(page, seen);
  await context.close();
});

test("the page's verifier agrees with openexec verify on a live receipt and on tampered ones", async () => {
  const { page, context, seen } = await openPage();
  const vkey = (await (await fetch(`${base}/ledger/key`)).text()).trim();
  const live = recorded.responses.find((r) => r.outcome === "executed");
  const receipt = live.receipt;
  const sig = receipt.entry_signature;
  const variants = {
    live: JSON.stringify(receipt),
    response: JSON.stringify(live),
    "sig-flipped": JSON.stringify({ ...receipt, entry_signature: (sig[0] === "A" ? "B" : "A") + sig.slice(1) }),
    "entry-tampered": JSON.stringify({ ...receipt, entry: receipt.entry.replace('"echo"', '"ech0"') }),
    "index-moved": JSON.stringify({ ...receipt, leaf_index: receipt.leaf_index + 1 }),
    "proof-tampered": JSON.stringify({ ...receipt, inclusion_proof: { ...receipt.inclusion_proof, hashes: receipt.inclusion_proof.hashes.slice(1) } }),
    "checkpoint-tampered": JSON.stringify({ ...receipt, checkpoint: receipt.checkpoint.replace(/\n(\d+)\n/, (_, n) => `\n${Number(n) + 1}\n`) }),
  };
  for (const [label, text] of Object.entries(variants)) {
    const cli = cliVerify({ "k.txt": `${vkey}\n`, "r.json": text }, ["--key", "k.txt", "r.json"]);
    await page.fill("#v-receipt", text);
    await page.click("#v-run");
    await page.waitForFunction(() => document.querySelector("#v-result").dataset.verdict);
    const shown = await page.textContent("#v-result");
    assert.equal(normalize(shown.split("\n")), normalize(cli.lines), label);
    assert.equal(await page.getAttribute("#v-result", "data-verdict"), cli.code === 0 ? "ok" : "failed", label);
    await page.evaluate(() => delete document.querySelector("#v-result").dataset.verdict);
    if (label === "live") assert.ok(await page.$("#v-proof svg.proof"), "the proof is drawn");
  }
  await assertClean(page, seen);
  await context.close();
});

test("the page's verifier gives openexec verify's line on every vector case", async () => {
  const cases = JSON.parse(fs.readFileSync(CASES, "utf8"));
  const { page, context, seen } = await openPage();
  const results = await page.evaluate(async (all) => {
    const V = await import("/ui/verify.js");
    const out = [];
    for (const c of all) {
      const r = await V.verifyText({ receipt: c.receipt, name: c.file, key: c.key, checkpoint: c.checkpoint, consistency: c.consistency });
      out.push({ ok: r.ok, lines: r.lines });
    }
    return out;
  }, cases);
  const differ = [];
  cases.forEach((c, i) => {
    const same = normalize(results[i].lines) === normalize(c.lines) && (results[i].ok ? 0 : 1) === c.code;
    if (!same) differ.push(`${c.name}\n  openexec verify: ${normalize(c.lines)}\n  browser:         ${normalize(results[i].lines)}`);
  });
  const ok = cases.filter((c) => c.code === 0).length;
  console.log(`# verifier cases: ${cases.length} (${ok} verify, ${cases.length - ok} fail), ${differ.length} differ`);
  assert.deepEqual(differ, []);
  assert.ok(cases.length > 700, `${cases.length} cases`);
  assert.ok(ok > 20);
  for (const name of ["vector-tlog-proof", "c2sp-leaf-7-of-13.tlog-proof", "c2sp-spec-tlog-proof", "vector-r1"]) {
    assert.ok(cases.some((c) => c.name === name), name);
  }
  await assertClean(page, seen);
  await context.close();
});

test("hostile strings in entries are shown as text and never run", async () => {
  const { page, context, seen } = await openPage();
  const tenants = await page.$$eval("#entries tbody tr td:nth-child(5)", (tds) => tds.map((t) => t.textContent));
  assert.ok(tenants.length > 0 && tenants.every((t) => t === HOSTILE_TENANT), "the tenant, literally");
  for (const nonce of HOSTILE_NONCES) {
    const answer = recorded.responses.find((r) => r.receipt && JSON.parse(r.receipt.entry).nonce === nonce);
    const index = answer.receipt.leaf_index;
    await page.click(`#entries tbody tr[data-index="${index}"]`);
    await page.waitForFunction((i) => document.querySelector("#entry-index").textContent === String(i), index);
    await page.waitForSelector("#entry-proof svg.proof");
    const fields = await page.$$eval("#entry-fields dd", (dds) => dds.map((d) => d.textContent));
    assert.ok(fields.includes(nonce), `the nonce ${nonce}, literally`);
    // Its /execute answer, whose result echoes the hostile payload, verified in the page.
    await page.fill("#v-receipt", JSON.stringify(answer));
    await page.click("#v-run");
    await page.waitForFunction(() => document.querySelector("#v-result").dataset.verdict === "ok");
    await page.evaluate(() => delete document.querySelector("#v-result").dataset.verdict);
  }
  // A receipt fetched and shown by the page.
  await page.click("#entry-receipt");
  await page.waitForFunction(() => document.querySelector("#entry-receipt-text").textContent.includes("openexec-receipt/v1"));
  const counts = await page.evaluate(() => ({
    scripts: document.scripts.length,
    images: document.images.length,
    iframes: document.querySelectorAll("iframe").length,
    bold: document.querySelectorAll("main b").length,
  }));
  assert.deepEqual(counts, { scripts: 1, images: 0, iframes: 0, bold: 0 });
  await page.screenshot({ path: path.join(ARTIFACTS, "hostile.png"), fullPage: true });
  await assertClean(page, seen);
  await context.close();
});
