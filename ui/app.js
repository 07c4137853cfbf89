// The auditor's page: reads the public ledger routes of the service that
// serves it, and verifies what it shows with ./verify.js in this browser.
// Ledger strings (actions, tenants, nonces, reasons, …) are attacker-chosen:
// they reach the document only through ./draw.js (text nodes), never as
// markup.

import { activityPlot, el, fill, proofPath } from "./draw.js";
import * as V from "./verify.js";

const $ = (id) => document.getElementById(id);
const TOKEN = "openexec-token";
const WITNESSES = "openexec-witness-keys";
const PAGE = 50;
const FILTERED_CHUNK = 500;
const FILTERED_SCAN = 5000;
const ENTRIES_PER_REQUEST = 1000;
const PLOT_BUCKETS = 30;

const state = {
  log: null,
  checkpointText: "",
  checkpoint: null,
  head: 0,
  cursor: 0,
  witnesses: [],
  receiptName: "receipt",
  entryReceipt: null,
  entryExecId: null,
};

function status(text, bad = false) {
  const node = $("status");
  node.textContent = text;
  node.className = bad ? "bad" : "";
}

/** GET on this origin; the token, when one is set, as a bearer. */
async function api(path, { text = false } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  if (!r.ok) {
    let detail = `${r.status}`;
    try {
      const body = await r.json();
      detail = `${r.status} ${body.code}: ${body.detail}`;
    } catch {
      // not a JSON error body
    }
    throw new Error(`${path}: ${detail}`);
  }
  return text ? r.text() : r.json();
}

const b64 = V.b64encode;

// ---- Log, checkpoint, cosignatures --------------------------------------

async function loadLog() {
  const vkey = (await api("/ledger/key", { text: true })).trim();
  state.log = await V.parseKey(vkey, 1);
  $("origin").textContent = state.log.name;
  $("vkey").textContent = vkey;
  if (!$("v-key").value) $("v-key").value = vkey;
}

async function loadCheckpoint() {
  state.checkpointText = await api("/ledger/checkpoint", { text: true });
  try {
    state.checkpoint = await V.openCheckpoint(state.checkpointText, state.log);
    $("cp-size").textContent = String(state.checkpoint.size);
    $("cp-root").textContent = b64(state.checkpoint.root);
    fill($("cp-sig"), el("span", { class: "ok" }, "valid (checked in this browser)"));
  } catch (e) {
    state.checkpoint = null;
    fill($("cp-sig"), el("span", { class: "bad" }, `FAILED: checkpoint: ${e.message}`));
  }
  await showCosignatures(state.checkpointText, $("cosigs"), $("cosig-note"));
}

async function showCosignatures(noteText, table, note) {
  let rows = [];
  try {
    rows = await V.checkCosignatures(noteText, state.witnesses, state.log);
  } catch {
    rows = [];
  }
  table.hidden = rows.length === 0;
  const body = table.querySelector("tbody");
  fill(
    body,
    rows.map((c) => {
      const verdict =
        c.verified === null
          ? el("span", { class: "unverified" }, "not verified: no key for this witness")
          : c.verified
            ? el("span", { class: "ok" }, "valid")
            : el("span", { class: "bad" }, "INVALID");
      const when = c.timestamp === null ? "" : new Date(Number(c.timestamp) * 1000).toISOString();
      return el("tr", {}, el("td", {}, c.name), el("td", {}, el("code", {}, c.keyId)), el("td", {}, when), el("td", {}, verdict));
    }),
  );
  if (note) {
    note.textContent = rows.length
      ? state.witnesses.length
        ? ""
        : "Cosignatures are shown unverified: give the witnesses' keys below to check them here."
      : "No witness has cosigned this checkpoint.";
  }
  return rows;
}

async function applyWitnessKeys() {
  const text = $("witness-keys").value;
  const keys = [];
  const errors = [];
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    try {
      keys.push(await V.parseKey(line, V.ALG_COSIGNATURE));
    } catch (e) {
      errors.push(`${line.slice(0, 40)}: ${e.message}`);
    }
  }
  state.witnesses = keys;
  sessionStorage.setItem(WITNESSES, text);
  if (errors.length) status(`witness keys: ${errors.join("; ")}`, true);
  await showCosignatures(state.checkpointText, $("cosigs"), $("cosig-note"));
}

// ---- Entries -------------------------------------------------------------

/** An entry of the API: its index, signature, text, and the text read (or null). */
function readEntry(item) {
  let fields = null;
  try {
    fields = JSON.parse(item.entry);
  } catch {
    fields = null;
  }
  return { index: item.index, text: item.entry, signature: item.entry_signature, fields };
}

function matches(e) {
  const outcome = $("filter-outcome").value;
  const action = $("filter-action").value.trim();
  if (!e.fields) return !outcome && !action;
  return (!outcome || e.fields.outcome === outcome) && (!action || e.fields.action === action);
}

function row(e) {
  const f = e.fields ?? {};
  const tr = el(
    "tr",
    { "data-index": e.index, tabindex: 0 },
    el("td", {}, String(e.index)),
    el("td", {}, (f.time ?? "").replace("T", " ").replace("Z", "")),
    el("td", { class: `outcome-${f.outcome}` }, f.outcome ?? "?"),
    el("td", {}, f.action ?? "?"),
    el("td", {}, f.tenant ?? "?"),
    el("td", {}, f.reason ?? "?"),
  );
  tr.addEventListener("click", () => showEntry(e));
  tr.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") showEntry(e);
  });
  return tr;
}

/** One page, newest first, from index `end` (exclusive) down. */
async function loadEntries(end) {
  const filtered = Boolean($("filter-outcome").value || $("filter-action").value.trim());
  const chunk = filtered ? FILTERED_CHUNK : PAGE;
  const rows = [];
  let at = end;
  let scanned = 0;
  while (rows.length < PAGE && at > 0 && scanned < (filtered ? FILTERED_SCAN : PAGE)) {
    const start = Math.max(0, at - chunk);
    const { entries } = await api(`/ledger/entries?start=${start}&end=${at}`);
    scanned += at - start;
    const newest = entries.map(readEntry).reverse();
    let next = start;
    for (const e of newest) {
      if (rows.length === PAGE) {
        next = e.index + 1;
        break;
      }
      if (matches(e)) rows.push(e);
    }
    at = next;
  }
  state.cursor = at;
  fill($("entries").querySelector("tbody"), rows.map(row));
  $("older").disabled = at <= 0;
  $("page-note").textContent = `${rows.length} shown; entries ${at}–${end - 1} of ${state.head} read${filtered && at > 0 && rows.length < PAGE ? " (press Older to read further)" : ""}`;
}

/** The entry, its signature and its inclusion in the latest checkpoint, checked here. */
async function showEntry(e) {
  $("entry-section").hidden = false;
  $("entry-index").textContent = String(e.index);
  $("entry-receipt").hidden = false;
  $("entry-to-verifier").hidden = true;
  $("entry-receipt-text").textContent = "";
  state.entryReceipt = null;
  state.entryExecId = typeof e.fields?.exec_id === "string" ? e.fields.exec_id : null;
  const dl = $("entry-fields");
  const f = e.fields ?? {};
  fill(
    dl,
    Object.keys(f).sort().flatMap((k) => [el("dt", {}, k), el("dd", {}, typeof f[k] === "string" ? f[k] : JSON.stringify(f[k]))]),
    el("dt", {}, "entry_signature"),
    el("dd", {}, el("code", {}, e.signature)),
  );
  fill($("entry-proof"));
  const cp = state.checkpoint;
  if (!cp || BigInt(e.index) >= cp.size) {
    fill($("entry-verdict"), el("span", { class: "unverified" }, `Not in the latest checkpoint yet (size ${cp ? cp.size : "?"}): reload to see it included.`));
    return;
  }
  const proof = await api(`/ledger/proof/inclusion?index=${e.index}&tree_size=${cp.size}`);
  // The public parts of a receipt: what `openexec verify` checks, salts aside.
  const receipt = {
    format: V.RECEIPT_FORMAT,
    entry: e.text,
    entry_signature: e.signature,
    leaf_index: e.index,
    inclusion_proof: { tree_size: Number(cp.size), hashes: proof.hashes },
    checkpoint: state.checkpointText,
  };
  const result = await V.verifyText({ receipt: JSON.stringify(receipt), key: state.log.vkey });
  fill($("entry-verdict"), el("span", { class: result.ok ? "ok" : "bad", "data-verdict": result.ok ? "ok" : "failed" }, result.lines.join("\n")));
  if (result.verified.length === 1) drawProof($("entry-proof"), result.verified[0], true);
}

function drawProof(where, v, ok) {
  fill(
    where,
    proofPath({
      steps: v.path.map((s) => ({ sibling: b64(s.sibling), side: s.side, hash: b64(s.hash) })),
      leaf: b64(v.leaf),
      root: b64(v.checkpoint.root),
      index: String(v.receipt.leaf_index),
      size: String(v.checkpoint.size),
      ok,
    }),
  );
}

async function fetchEntryReceipt() {
  const execId = state.entryExecId;
  if (!execId) return;
  try {
    const receipt = await api(`/receipts/${encodeURIComponent(execId)}`);
    state.entryReceipt = JSON.stringify(receipt, null, 2);
    $("entry-receipt-text").textContent = state.entryReceipt;
    $("entry-to-verifier").hidden = false;
  } catch (e) {
    $("entry-receipt-text").textContent = `${e.message}${/401|403/.test(e.message) ? " (give an auditor's token above)" : ""}`;
  }
}

// ---- Activity --------------------------------------------------------------

async function loadActivity() {
  const end = state.head;
  const start = Math.max(0, end - Number($("plot-span").value));
  if (end === 0) {
    $("activity-note").textContent = "The ledger is empty.";
    fill($("activity"), activityPlot([]));
    return;
  }
  const entries = [];
  for (let at = start; at < end; at += ENTRIES_PER_REQUEST) {
    const page = await api(`/ledger/entries?start=${at}&end=${Math.min(end, at + ENTRIES_PER_REQUEST)}`);
    entries.push(...page.entries);
  }
  const read = entries.map(readEntry).filter((e) => e.fields && typeof e.fields.time === "string");
  const times = read.map((e) => Date.parse(e.fields.time)).filter(Number.isFinite);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times) + 1;
  const span = Math.max(1, t1 - t0) / PLOT_BUCKETS;
  const buckets = Array.from({ length: PLOT_BUCKETS }, (_, i) => ({
    start: new Date(t0 + i * span),
    end: new Date(t0 + (i + 1) * span),
    executed: 0,
    rejected: 0,
    failed: 0,
    other: 0,
  }));
  for (const e of read) {
    const t = Date.parse(e.fields.time);
    if (!Number.isFinite(t)) continue;
    const b = buckets[Math.min(PLOT_BUCKETS - 1, Math.floor((t - t0) / span))];
    const kind = ["executed", "rejected", "failed"].includes(e.fields.outcome) ? e.fields.outcome : "other";
    b[kind] += 1;
  }
  const totals = { executed: 0, rejected: 0, failed: 0, other: 0 };
  for (const b of buckets) for (const k of Object.keys(totals)) totals[k] += b[k];
  $("activity-note").textContent = `The last ${read.length} entries (${start}–${end - 1}): ${totals.executed} executed, ${totals.rejected} rejected, ${totals.failed} failed, ${totals.other} replayed or interrupted.`;
  fill($("activity"), activityPlot(buckets));
}

// ---- The verifier panel ----------------------------------------------------

async function runVerifier() {
  const optional = (id) => ($(id).value.trim() ? $(id).value : null);
  const checkpoint = optional("v-checkpoint");
  const result = await V.verifyText({
    receipt: $("v-receipt").value,
    name: state.receiptName,
    key: $("v-key").value,
    checkpoint,
    consistency: checkpoint === null ? null : optional("v-consistency"),
  });
  const out = $("v-result");
  out.textContent = result.lines.join("\n");
  out.className = result.ok ? "ok" : "bad";
  out.dataset.verdict = result.ok ? "ok" : "failed";
  fill($("v-proof"));
  $("v-cosigs").hidden = true;
  if (result.verified.length === 1) {
    const v = result.verified[0];
    drawProof($("v-proof"), v, true);
    const rows = await showCosignatures(v.receipt.checkpoint, $("v-cosigs"), null);
    $("v-cosigs").hidden = rows.length === 0;
  }
}

async function useLatestCheckpoint() {
  $("v-checkpoint").value = state.checkpointText;
  let receipt;
  try {
    receipt = V.parseReceipt($("v-receipt").value);
  } catch {
    $("v-consistency").value = "";
    return;
  }
  if (!state.checkpoint || receipt.tree_size > state.checkpoint.size) return;
  // Only the two tree sizes are sent, never the receipt.
  const proof = await api(`/ledger/proof/consistency?from=${receipt.tree_size}&to=${state.checkpoint.size}`);
  $("v-consistency").value = proof.hashes.join("\n");
}

async function readDropped(file) {
  state.receiptName = file.name;
  try {
    $("v-receipt").value = new TextDecoder("utf-8", { fatal: true }).decode(await file.arrayBuffer());
  } catch {
    $("v-receipt").value = "";
    $("v-result").textContent = `FAILED: reading ${file.name}: stream did not contain valid UTF-8`;
    return;
  }
  await runVerifier();
}

// ---- Start -------------------------------------------------------------

function wire() {
  $("token").value = "";
  $("token-save").addEventListener("click", () => {
    sessionStorage.setItem(TOKEN, $("token").value.trim());
    $("token").value = "";
    status("Token kept for this tab.");
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    status("Token forgotten.");
  });
  $("witness-keys").value = sessionStorage.getItem(WITNESSES) ?? "";
  $("witness-apply").addEventListener("click", () => applyWitnessKeys().catch(fail));
  $("filter-apply").addEventListener("click", () => loadEntries(state.head).catch(fail));
  $("newest").addEventListener("click", () => refresh().catch(fail));
  $("older").addEventListener("click", () => loadEntries(state.cursor).catch(fail));
  $("entry-receipt").addEventListener("click", () => fetchEntryReceipt().catch(fail));
  $("entry-to-verifier").addEventListener("click", () => {
    $("v-receipt").value = state.entryReceipt ?? "";
    state.receiptName = "receipt";
    runVerifier().catch(fail);
    $("verify-section").scrollIntoView();
  });
  $("plot-span").addEventListener("change", () => loadActivity().catch(fail));
  $("v-run").addEventListener("click", () => runVerifier().catch(fail));
  $("v-latest").addEventListener("click", () => useLatestCheckpoint().catch(fail));
  $("v-receipt").addEventListener("input", () => {
    state.receiptName = "receipt";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    const file = ev.dataTransfer?.files?.[0];
    if (file) readDropped(file).catch(fail);
  });
}

function fail(e) {
  status(e.message, true);
}

async function refresh() {
  const health = await api("/health");
  state.head = Number(health.ledger.size);
  await loadCheckpoint();
  await loadEntries(state.head);
  await loadActivity();
}

async function start() {
  wire();
  if (!globalThis.crypto?.subtle) {
    status("This page needs Web Crypto, which browsers give only to secure contexts: open it over HTTPS or on localhost.", true);
    return;
  }
  if (!(await V.ed25519Supported())) {
    status("This browser's Web Crypto has no Ed25519: signatures cannot be checked here (use a current Chromium, Firefox or Safari, or openexec verify).", true);
    return;
  }
  await loadLog();
  if (sessionStorage.getItem(WITNESSES)) await applyWitnessKeys();
  await refresh();
  document.body.dataset.ready = "true";
}

start().catch(fail);
