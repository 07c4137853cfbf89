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

const WITNESS = "w1.example";
let witness; // {vkey, sign(bytes)}
let server;
let base;
let dataDir;
let browser;
const recorded = { executed: 0, rejected: 0, responses: [] };

async function startServer(env, data) {
  const child = spawn(BIN, ["serve"], {
    env: {
      PATH: process.env.PATH,
      OPENEXEC_BIND: "127.0.0.1:0",
      OPENEXEC_DB_URL: `sled://${data}`,
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
async function openPage(at = base) {
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
  await page.goto(`${at}/ui`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  return { page, context, seen };
}

async function assertClean(page, seen, allowed = /^$/) {
  assert.deepEqual(seen.console.filter((m) => !allowed.test(m)), [], "no console errors");
  assert.deepEqual(seen.errors, [], "no page errors");
  assert.deepEqual(seen.dialogs, [], "no dialog");
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], "no CSP violation");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no injected script ran");
}

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const utf8 = (text) => new TextEncoder().encode(text);

/** A tlog-cosignature/v1 witness key (type 0x04), made here. */
async function makeWitness(name) {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", Buffer.concat([utf8(`${name}\n`), Uint8Array.of(4), pub])));
  const id = digest.slice(0, 4);
  return {
    vkey: `${name}+${Buffer.from(id).toString("hex")}+${b64(Buffer.concat([Uint8Array.of(4), pub]))}`,
    /** The cosignature line of a checkpoint body at time `t` (seconds). */
    async line(body, t) {
      const time = new Uint8Array(8);
      new DataView(time.buffer).setBigUint64(0, BigInt(t));
      const msg = Buffer.concat([utf8(`cosignature/v1\ntime ${t}\n`), utf8(body)]);
      const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, msg));
      return `— ${name} ${b64(Buffer.concat([id, time, sig]))}\n`;
    },
  };
}

/** The witness cosigns the published checkpoint and hands it back to the log. */
async function cosignLatest() {
  const note = await (await fetch(`${base}/ledger/checkpoint`)).text();
  const body = `${note.slice(0, note.indexOf("\n\n"))}\n`;
  const cosigned = note + (await witness.line(body, 1_800_000_000));
  const r = await fetch(`${base}/ledger/cosignatures`, { method: "POST", headers: { "content-type": "text/plain" }, body: cosigned });
  assert.equal(r.status, 200, await r.text());
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  witness = await makeWitness(WITNESS);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "openexec-ui-"));
  ({ child: server, url: base } = await startServer(
    { CLAWSHIELD_TENANT_ID: HOSTILE_TENANT, OPENEXEC_WITNESS_KEYS: witness.vkey },
    path.join(dataDir, "data"),
  ));
  for (let i = 0; i < 7; i += 1) await execute({ action: "echo", payload: { n: i }, nonce: `echo-${i}` });
  for (let i = 0; i < 3; i += 1) await execute({ action: "add", payload: { a: i, b: 1 }, nonce: `add-${i}` });
  for (let i = 0; i < 4; i += 1) await execute({ action: "no.such-action", nonce: `nope-${i}` });
  await execute({ action: "echo", payload: { n: 0 }, nonce: "echo-0" }); // a replay
  for (const nonce of HOSTILE_NONCES) await execute({ action: "echo", payload: HOSTILE_PAYLOAD, nonce });
  await execute({ action: "x<script>", nonce: "bad-action" }); // refused before recording
  await cosignLatest();
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
  assert.deepEqual(await page.$$eval("#cosigs tbody td:first-child", (tds) => tds.map((t) => t.textContent)), [WITNESS]);
  assert.match(await page.textContent("#cosigs tbody"), /not verified/);
  assert.match(await page.textContent("#cosig-note"), /shown unverified/);
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

test("cosignatures are verified in the browser with the witness keys given", async () => {
  const { page, context, seen } = await openPage();
  await page.click("#witness-details summary");
  await page.fill("#witness-keys", witness.vkey);
  await page.click("#witness-apply");
  await page.waitForFunction(() => /valid/.test(document.querySelector("#cosigs tbody td:last-child")?.textContent ?? ""));
  assert.equal(await page.textContent("#cosigs tbody td:last-child"), "valid");
  assert.equal(await page.textContent("#cosig-note"), "");
  // A receipt against the cosigned checkpoint, its cosignature broken: the
  // log's signature still holds (openexec verify --key says OK), the
  // witness's does not.
  const vkey = (await (await fetch(`${base}/ledger/key`)).text()).trim();
  const execId = recorded.responses.find((r) => r.outcome === "executed").exec_id;
  const receipt = await (await fetch(`${base}/receipts/${execId}`)).json();
  const lines = receipt.checkpoint.split("\n");
  const at = lines.findIndex((l) => l.startsWith(`— ${WITNESS} `));
  assert.ok(at > 0, receipt.checkpoint);
  for (const [label, broken, verdict] of [["intact", lines[at], "valid"], ["broken", lines[at].replace(/.{6}$/, (t) => (t[0] === "A" ? "B" : "A") + t.slice(1)), "INVALID"]]) {
    const text = JSON.stringify({ ...receipt, checkpoint: lines.map((l, i) => (i === at ? broken : l)).join("\n") });
    const cli = cliVerify({ "k.txt": `${vkey}\n`, "r.json": text }, ["--key", "k.txt", "r.json"]);
    await page.fill("#v-receipt", text);
    await page.click("#v-run");
    await page.waitForFunction(() => document.querySelector("#v-result").dataset.verdict);
    assert.equal(await page.textContent("#v-result"), cli.lines.join("\n"), label);
    await page.waitForSelector("#v-cosigs:not([hidden])");
    assert.equal(await page.textContent("#v-cosigs tbody td:last-child"), verdict, label);
    await page.evaluate(() => delete document.querySelector("#v-result").dataset.verdict);
  }
  await assertClean(page, seen);
  await context.close();
});

test("with authentication on, the page fetches a receipt with the token pasted, kept in the tab only", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "openexec-ui-auth-"));
  const data = path.join(dir, "data");
  const mint = (role) => {
    const done = spawnSync(BIN, ["token", "create", "--data", data, "--role", role, "--tenant", "acme"], { encoding: "utf8" });
    assert.equal(done.status, 0, done.stderr);
    return done.stdout.split("\n")[0].trim();
  };
  const agentToken = mint("agent");
  const auditorToken = mint("auditor");
  const { child, url } = await startServer({}, data);
  try {
    const r = await fetch(`${url}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${agentToken}` },
      body: JSON.stringify({ action: "echo", payload: { m: 1 }, nonce: "auth-1" }),
    });
    assert.equal(r.status, 200);
    const { page, context, seen } = await openPage(url);
    await page.click('#entries tbody tr[data-index="0"]');
    await page.waitForSelector("#entry-proof svg.proof");
    await page.click("#entry-receipt");
    await page.waitForFunction(() => /401 unauthorized/.test(document.querySelector("#entry-receipt-text").textContent));
    await page.click("#auth summary");
    await page.fill("#token", auditorToken);
    await page.click("#token-save");
    assert.equal(await page.inputValue("#token"), "", "the field is cleared");
    await page.click("#entry-receipt");
    await page.waitForFunction(() => document.querySelector("#entry-receipt-text").textContent.includes("openexec-receipt/v1"));
    await page.click("#entry-to-verifier");
    await page.waitForFunction(() => document.querySelector("#v-result").dataset.verdict === "ok");
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem("openexec-token"), local: localStorage.length, cookies: document.cookie }));
    assert.deepEqual(stored, { session: auditorToken, local: 0, cookies: "" });
    await assertClean(page, seen, /status of 401/);
    await context.close();
  } finally {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a longer ledger pages newest first, filters across pages, and plots the span chosen", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "openexec-ui-long-"));
  const { child, url } = await startServer({}, path.join(dir, "data"));
  try {
    const total = 1230;
    const post = (i) =>
      fetch(`${url}/execute`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ action: i % 100 === 7 ? "missing" : "echo", payload: { i }, nonce: `long-${i}` }),
      }).then((r) => r.arrayBuffer());
    for (let i = 0; i < total; i += 10) await Promise.all(Array.from({ length: 10 }, (_, k) => post(i + k)));
    const rejected = Array.from({ length: total }, (_, i) => i).filter((i) => i % 100 === 7).length;
    const { page, context, seen } = await openPage(url);
    const indexes = () => page.$$eval("#entries tbody tr", (rows) => rows.map((r) => Number(r.dataset.index)));
    const first = await indexes();
    assert.deepEqual(first, Array.from({ length: 50 }, (_, i) => total - 1 - i));
    await page.click("#older");
    await page.waitForFunction((n) => document.querySelector("#entries tbody tr")?.dataset.index === String(n), total - 51);
    assert.deepEqual(await indexes(), Array.from({ length: 50 }, (_, i) => total - 51 - i));
    await page.selectOption("#filter-outcome", "rejected");
    await page.click("#filter-apply");
    await page.waitForFunction(() => [...document.querySelectorAll("#entries tbody tr td:nth-child(3)")].every((td) => td.textContent === "rejected"));
    assert.equal((await indexes()).length, rejected);
    const plotted = () => page.$$eval("#activity svg rect.bar", (bars) => bars.reduce((n, b) => n + Number(b.dataset.count), 0));
    assert.equal(await plotted(), 1000);
    await page.selectOption("#plot-span", "5000");
    await page.waitForFunction((n) => [...document.querySelectorAll("#activity svg rect.bar")].reduce((s, b) => s + Number(b.dataset.count), 0) === n, total);
    await assertClean(page, seen);
    await context.close();
  } finally {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a dropped file is verified under its own name, as openexec verify names it", async () => {
  const { page, context, seen } = await openPage();
  const vectors = path.join(REPO, "tests", "vectors");
  const drop = (name, bytes) =>
    page.evaluate(
      ([n, b]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(b)], n));
        document.querySelector("#drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
      },
      [name, [...bytes]],
    );
  const files = [
    ["receipt.tlog-proof", path.join(vectors, "openexec", "receipt.tlog-proof"), path.join(vectors, "openexec", "vkey.txt")],
    ["leaf-7-of-13.tlog-proof", path.join(vectors, "c2sp", "generated", "leaf-7-of-13.tlog-proof"), path.join(vectors, "c2sp", "generated", "log.vkey")],
    ["receipt.json", path.join(vectors, "openexec", "receipt.json"), path.join(vectors, "openexec", "vkey.txt")],
  ];
  for (const [name, file, keyFile] of files) {
    const bytes = fs.readFileSync(file);
    const key = fs.readFileSync(keyFile, "utf8").trim();
    const cli = cliVerify({ "k.txt": key, [name]: bytes }, ["--key", "k.txt", name]);
    await page.fill("#v-key", key);
    await page.evaluate(() => (document.querySelector("#v-result").textContent = ""));
    await drop(name, bytes);
    await page.waitForFunction(() => document.querySelector("#v-result").textContent);
    assert.equal(await page.textContent("#v-result"), cli.lines.join("\n"), name);
  }
  const garbage = Buffer.from([0xff, 0xfe, 0x00]);
  const cli = cliVerify({ "k.txt": "x", "bad.json": garbage }, ["--key", "k.txt", "bad.json"]);
  await page.evaluate(() => (document.querySelector("#v-result").textContent = ""));
  await drop("bad.json", garbage);
  await page.waitForFunction(() => document.querySelector("#v-result").textContent);
  assert.equal(await page.textContent("#v-result"), cli.lines.join("\n"));
  await assertClean(page, seen);
  await context.close();
});
