// The third receipt verifier: docs/FORMATS.md §5–14 and the C2SP specs
// (signed-note, tlog-checkpoint, tlog-proof, tlog-cosignature), on the
// browser's Web Crypto (SHA-256, Ed25519). It prints the one-line verdicts
// of `openexec verify`. No DOM code: tests import it directly, and nothing
// it is given leaves the page.

import { JSONError, canonical, isJson, loads } from "./json.js";

const enc = new TextEncoder();
const subtle = globalThis.crypto?.subtle;

export const RECEIPT_FORMAT = "openexec-receipt/v1";
export const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";
const ENTRY_CONTEXT = enc.encode("OpenExec entry signature v1\n");
const U64 = 2n ** 64n;
const MAX_INDEX = 2n ** 53n - 1n;
const MAX_PROOF_LEN = 128;
const ALG_ED25519 = 1;
export const ALG_COSIGNATURE = 4;

// ---- bytes, base64, hashing --------------------------------------------

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equal(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

export function b64encode(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Standard padded base64, strictly: padding, no whitespace, zero trailing bits. */
export function b64decode(text) {
  if (typeof text !== "string" || text.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  let raw;
  try {
    raw = atob(text);
  } catch {
    return null;
  }
  const out = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  return b64encode(out) === text ? out : null;
}

export async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

// ---- Ed25519 with a strict verifier's refusals ------------------------

const P = 2n ** 255n - 19n;
function modpow(b, e, m) {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}
const D = ((-121665n * modpow(121666n, P - 2n, P)) % P + P) % P;

const hexOf = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

// The eight canonical encodings of the points of small order, and six
// non-canonical aliases a lenient decoder maps to them (refused as keys).
const SMALL_ORDER_CANONICAL = new Set([
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
]);
const SMALL_ORDER = new Set([
  ...SMALL_ORDER_CANONICAL,
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  "0100000000000000000000000000000000000000000000000000000000000080",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
]);

/** Whether 32 bytes decode to a point of edwards25519. */
export function isCurvePoint(encoded) {
  if (encoded.length !== 32) return false;
  let y = 0n;
  for (let i = 31; i >= 0; i -= 1) y = (y << 8n) | BigInt(encoded[i]);
  y = (y & ((1n << 255n) - 1n)) % P;
  const u = (y * y - 1n + P) % P;
  const v = (D * y * y + 1n) % P;
  const x2 = (u * modpow(v, P - 2n, P)) % P;
  return x2 === 0n || modpow(x2, (P - 1n) / 2n, P) === 1n;
}

const imported = new Map();

/** RFC 8032 Ed25519, refusing small-order keys and R (as verify_strict does). */
export async function ed25519Verify(pub, message, signature) {
  if (pub.length !== 32 || signature.length !== 64) return false;
  if (SMALL_ORDER.has(hexOf(pub)) || SMALL_ORDER_CANONICAL.has(hexOf(signature.slice(0, 32)))) return false;
  const id = hexOf(pub);
  try {
    if (!imported.has(id)) {
      imported.set(id, await subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]));
    }
    return await subtle.verify({ name: "Ed25519" }, imported.get(id), signature, message);
  } catch (e) {
    // A browser without Ed25519 must not make every signature look forged.
    if (e?.name === "NotSupportedError") throw new Error("this browser's Web Crypto has no Ed25519");
    return false;
  }
}

/** Whether this browser's Web Crypto verifies Ed25519. */
export async function ed25519Supported() {
  const basePoint = Uint8Array.from([0x58, ...new Array(31).fill(0x66)]);
  try {
    await subtle.importKey("raw", basePoint, { name: "Ed25519" }, false, ["verify"]);
    return true;
  } catch {
    return false;
  }
}

// ---- Strings as Rust writes them ---------------------------------------

const WHITESPACE = new Set([..."\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"]);
for (let c = 0x2000; c < 0x200b; c += 1) WHITESPACE.add(String.fromCharCode(c));

/** `str::trim`: Unicode White_Space only. */
export function rustTrim(text) {
  let a = 0;
  let b = text.length;
  while (a < b && WHITESPACE.has(text[a])) a += 1;
  while (b > a && WHITESPACE.has(text[b - 1])) b -= 1;
  return text.slice(a, b);
}

const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zs}\p{Zl}\p{Zp}\p{Co}\p{Cs}\p{Cn}]/u;

/** A string quoted as Rust's `{:?}` writes it. */
export function rustDebug(text) {
  let out = '"';
  for (const c of text) {
    const named = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0" }[c];
    if (named) out += named;
    else if (c !== " " && UNPRINTABLE.test(c)) out += `\\u{${c.codePointAt(0).toString(16)}}`;
    else out += c;
  }
  return `${out}"`;
}

// ---- Keys --------------------------------------------------------------

export class KeyError extends Error {}

export function keyNameValid(name) {
  return Boolean(name) && !name.includes("+") && ![...name].some((c) => WHITESPACE.has(c));
}

export async function keyId(name, alg, pub) {
  const d = await sha256(concat(enc.encode(name), Uint8Array.of(10, alg), pub));
  return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0;
}

const KEY_FORMAT = "malformed key text (expected <name>+<hex id>+<base64 key>)";

/** A signed-note verifier key `<name>+<hex id>+<base64(alg ‖ key)>`. */
export async function parseKey(text, alg) {
  const t = rustTrim(text);
  const first = t.indexOf("+");
  const second = first < 0 ? -1 : t.indexOf("+", first + 1);
  if (second < 0) throw new KeyError(KEY_FORMAT);
  const name = t.slice(0, first);
  const hex = t.slice(first + 1, second);
  const b64 = t.slice(second + 1);
  if (!/^[0-9a-fA-F]{8}$/.test(hex)) throw new KeyError(KEY_FORMAT);
  if (!keyNameValid(name)) throw new KeyError(`invalid key name ${rustDebug(name)}`);
  const raw = b64decode(b64);
  if (!raw || raw.length === 0) throw new KeyError("invalid Ed25519 key bytes");
  if (raw[0] !== alg) {
    throw new KeyError(
      "unexpected key algorithm (log keys are Ed25519 0x01, witness keys Ed25519 cosignature 0x04)",
    );
  }
  const pub = raw.slice(1);
  if (pub.length !== 32 || !isCurvePoint(pub)) throw new KeyError("invalid Ed25519 key bytes");
  const id = parseInt(hex, 16) >>> 0;
  if ((await keyId(name, alg, pub)) !== id) throw new KeyError("key id does not match the key");
  return { name, id, pub, alg, vkey: t };
}

// ---- Signed notes and checkpoints --------------------------------------

class NoteError extends Error {}

function parseSignatureLine(line) {
  if (!line.startsWith("— ")) throw new NoteError();
  const rest = line.slice(2);
  const sp = rest.indexOf(" ");
  if (sp < 0) throw new NoteError();
  const name = rest.slice(0, sp);
  const b64 = rest.slice(sp + 1);
  const raw = b64decode(b64);
  if (raw === null || !b64 || raw.length < 5 || !keyNameValid(name)) throw new NoteError();
  const id = ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0;
  return { name, id, signature: raw.slice(4), line };
}

/** A signed note split at its last blank line: text (ending "\n") and lines. */
export function parseNote(text) {
  if (enc.encode(text).length > 1_000_000) throw new NoteError();
  for (const c of text) if (c < " " && c !== "\n") throw new NoteError();
  const at = text.lastIndexOf("\n\n");
  if (at < 0) throw new NoteError();
  const sigs = text.slice(at + 2);
  if (!sigs.endsWith("\n")) throw new NoteError();
  const lines = sigs.slice(0, -1).split("\n");
  if (lines.length > 100) throw new NoteError();
  return { text: `${text.slice(0, at)}\n`, signatures: lines.map(parseSignatureLine) };
}

/** ASCII decimal, no sign, no leading zero ("0" allowed), below 2^64. */
export function parseDecimal(text) {
  if (!/^[0-9]+$/.test(text) || (text !== "0" && text.startsWith("0"))) return null;
  const v = BigInt(text);
  return v < U64 ? v : null;
}

/** A tlog-checkpoint body: origin, size, root, then non-empty extension lines. */
export function parseCheckpointBody(text) {
  if (!text.endsWith("\n")) return null;
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3 || !lines[0] || lines.slice(3).some((l) => !l)) return null;
  const size = parseDecimal(lines[1]);
  const root = b64decode(lines[2]);
  if (size === null || root === null || root.length !== 32) return null;
  return { origin: lines[0], size, root };
}

/** Opens a checkpoint signed by the log key; every line of that key must verify. */
export async function openCheckpoint(text, log) {
  let note;
  try {
    note = parseNote(text);
  } catch {
    throw new Error("malformed signed note");
  }
  const body = enc.encode(note.text);
  let signed = false;
  for (const s of note.signatures) {
    if (s.name !== log.name || s.id !== log.id) continue;
    if (!(await ed25519Verify(log.pub, body, s.signature))) throw new Error("checkpoint signature is invalid");
    signed = true;
  }
  if (!signed) throw new Error("checkpoint is not signed by the log key");
  const cp = parseCheckpointBody(note.text);
  if (!cp) throw new Error("malformed checkpoint body");
  if (cp.origin !== log.name) {
    throw new Error(`checkpoint origin ${rustDebug(cp.origin)} is not the log origin ${rustDebug(log.name)}`);
  }
  return { ...cp, note };
}

/**
 * The cosignature lines of a note, each checked against the witness keys
 * given (tlog-cosignature/v1): `verified` true or false for a known key,
 * null for an unknown one. Lines of the log's own key are left out.
 */
export async function checkCosignatures(text, witnesses, log) {
  const note = parseNote(text);
  const body = enc.encode(note.text);
  const out = [];
  for (const s of note.signatures) {
    if (log && s.name === log.name && s.id === log.id) continue;
    const key = witnesses.find((w) => w.name === s.name && w.id === s.id);
    let timestamp = null;
    let verified = null;
    if (s.signature.length === 72) {
      timestamp = new DataView(s.signature.buffer, s.signature.byteOffset).getBigUint64(0);
    }
    if (key) {
      verified = false;
      if (timestamp !== null && timestamp <= 2n ** 63n - 1n) {
        const msg = concat(enc.encode(`cosignature/v1\ntime ${timestamp}\n`), body);
        verified = await ed25519Verify(key.pub, msg, s.signature.slice(8));
      }
    }
    out.push({ name: s.name, keyId: s.id.toString(16).padStart(8, "0"), timestamp, verified });
  }
  return out;
}

// ---- Merkle proofs (RFC 6962 / RFC 9162) -------------------------------

export class ProofError extends Error {}
const malformed = () => new ProofError("proof has the wrong shape for these tree sizes");
const mismatch = () => new ProofError("proof does not match the root hash");

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}
const split = (n) => 1n << BigInt(bitLength(n - 1n) - 1);

export function inclusionPathLen(m, n) {
  let len = 0;
  while (n > 1n) {
    const k = split(n);
    len += 1;
    if (m < k) n = k;
    else {
      m -= k;
      n -= k;
    }
  }
  return len;
}

function consistencyProofLen(m, n) {
  let len = 0;
  let complete = true;
  while (m !== n) {
    const k = split(n);
    len += 1;
    if (m <= k) n = k;
    else {
      m -= k;
      n -= k;
      complete = false;
    }
  }
  return complete ? len : len + 1;
}

/**
 * Checks an inclusion proof; returns the path from the leaf to the root
 * (each step: the sibling, which side it is on, and the hash it yields).
 */
export async function verifyInclusion(proof, index, size, leaf, root) {
  if (index >= size) throw new ProofError(`leaf index ${index} is not below tree size ${size}`);
  if (proof.length > MAX_PROOF_LEN || proof.length !== inclusionPathLen(index, size)) throw malformed();
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  const steps = [];
  for (const p of proof) {
    if (sn === 0n) throw mismatch();
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      steps.push({ sibling: p, side: "left", hash: r });
      if (!(fn & 1n)) {
        while (!(fn & 1n) && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
      steps.push({ sibling: p, side: "right", hash: r });
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(r, root)) throw mismatch();
  return steps;
}

export async function verifyConsistency(proof, oldSize, newSize, oldRoot, newRoot) {
  if (oldSize > newSize) throw new ProofError(`old tree size ${oldSize} is larger than new tree size ${newSize}`);
  if (oldSize === newSize || oldSize === 0n) {
    if (proof.length) throw malformed();
    if (oldSize === newSize && !equal(oldRoot, newRoot)) throw mismatch();
    return;
  }
  if (!proof.length || proof.length > MAX_PROOF_LEN || proof.length !== consistencyProofLen(oldSize, newSize)) {
    throw malformed();
  }
  const path = [...proof];
  if ((oldSize & (oldSize - 1n)) === 0n) path.unshift(oldRoot);
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw mismatch();
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!(fn & 1n)) {
        while (!(fn & 1n) && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(fr, oldRoot) || !equal(sr, newRoot)) throw mismatch();
}

// ---- The entry (docs/FORMATS.md §5) -----------------------------------

export class EntryError extends Error {}
const shapeError = (why) => new EntryError(`entry is not valid JSON of the entry shape: ${why}`);
const invalidField = (f) => new EntryError(`invalid entry field \`${f}\``);

const OUTCOMES = ["executed", "failed", "rejected", "replayed", "interrupted", "redacted"];
const REDACTION_REASONS = ["personal_data", "leaked_secret", "legal", "other"];
const EFFECTS = ["none", "at-most-once", "idempotent-downstream"];
const APPROVAL_KINDS = ["none", "clawshield-v1", "openexec-v2"];
const REQUIRED = ["v", "origin", "index", "prev", "time", "exec_id", "tenant", "action", "nonce",
  "request_hash", "payload_commitment", "approval", "outcome", "reason"];
const OMITTED_WHEN_ABSENT = ["replay_of", "effects", "registry", "principal", "redacts"];
const FIELDS = new Set([...REQUIRED, "result_commitment", ...OMITTED_WHEN_ABSENT]);
const RFC3339 = /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$/;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const leap = (y) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);

function u64(v, name, err = shapeError) {
  if (typeof v !== "bigint" || v < 0n || v >= U64) throw err(`invalid type or range for \`${name}\`, expected u64`);
  return v;
}
function str(v, name, err = shapeError) {
  if (typeof v !== "string") throw err(`invalid type for \`${name}\`, expected a string`);
  return v;
}
const optStr = (v, name) => (v === null || v === undefined ? null : str(v, name));
function hashField(v, name) {
  const raw = b64decode(str(v, name));
  if (raw === null || raw.length !== 32) throw shapeError(`\`${name}\` is not a strict base64 hash of 32 bytes`);
  return v;
}
function choice(v, name, allowed) {
  if (!allowed.includes(str(v, name))) throw shapeError(`unknown variant of \`${name}\`: ${v}`);
  return v;
}
function object(v, name, allowed) {
  if (!(v instanceof Map)) throw shapeError(`invalid type for \`${name}\`, expected an object`);
  const unknown = [...v.keys()].filter((k) => !allowed.includes(k)).sort();
  if (unknown.length) throw shapeError(`unknown field \`${unknown[0]}\` in \`${name}\``);
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (any year).
function daysFromCivil(y, m, d) {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
function civilFromDays(z) {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

// RFC 3339 with a zone; returns the text it re-encodes to (UTC,
// microseconds, "Z"), or "\0" (never canonical) outside years 0–9999.
function timeField(v) {
  const text = str(v, "time");
  const m = RFC3339.exec(text);
  if (!m) throw shapeError("`time` is not an RFC 3339 date-time");
  const [year, month, day, hour, minute] = [1, 2, 3, 4, 5].map((i) => Number(m[i]));
  let second = Number(m[6]);
  const zone = m[8];
  const [offH, offM] = zone === "Z" || zone === "z" ? [0, 0] : [Number(zone.slice(1, 3)), Number(zone.slice(4, 6))];
  const dim = month >= 1 && month <= 12 ? DAYS[month - 1] + (month === 2 && leap(year) ? 1 : 0) : 0;
  if (day < 1 || day > dim || hour > 23 || minute > 59 || second > 60 || offH > 23 || offM > 59) {
    throw shapeError("`time` is out of range");
  }
  let micros = BigInt(`${(m[7] || ".0").slice(1)}000000`.slice(0, 6));
  if (second === 60) {
    second = 59;
    micros += 1_000_000n;
  }
  const sign = zone[0] === "+" ? 1 : zone[0] === "-" ? -1 : 0;
  const secs = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - sign * (offH * 3600 + offM * 60);
  const total = BigInt(secs) * 1_000_000n + micros;
  const daySecs = 86_400_000_000n;
  let days = total / daySecs;
  let rem = total % daySecs;
  if (rem < 0n) {
    rem += daySecs;
    days -= 1n;
  }
  const [oy, om, od] = civilFromDays(Number(days));
  if (oy < 0 || oy > 9999) return "\0";
  const s = Number(rem / 1_000_000n);
  const p2 = (n) => String(n).padStart(2, "0");
  const frac = String(rem % 1_000_000n).padStart(6, "0");
  return `${String(oy).padStart(4, "0")}-${p2(om)}-${p2(od)}T${p2(Math.floor(s / 3600))}:${p2(Math.floor(s / 60) % 60)}:${p2(s % 60)}.${frac}Z`;
}

function shape(obj) {
  if (!(obj instanceof Map)) throw shapeError("invalid type, expected an entry object");
  const unknown = [...obj.keys()].filter((k) => !FIELDS.has(k)).sort();
  if (unknown.length) throw shapeError(`unknown field \`${unknown[0]}\``);
  const missing = REQUIRED.filter((f) => !obj.has(f));
  if (missing.length) throw shapeError(`missing field \`${missing[0]}\``);
  const e = new Map();
  const v = obj.get("v");
  if (typeof v !== "bigint" || v < 0n || v >= 2n ** 32n) throw shapeError("invalid type or range for `v`, expected u32");
  e.set("v", v);
  e.set("index", u64(obj.get("index"), "index"));
  for (const n of ["origin", "exec_id", "tenant", "action", "nonce", "reason"]) e.set(n, str(obj.get(n), n));
  for (const n of ["prev", "request_hash", "payload_commitment"]) e.set(n, hashField(obj.get(n), n));
  const rc = obj.get("result_commitment");
  e.set("result_commitment", rc === null || rc === undefined ? null : hashField(rc, "result_commitment"));
  e.set("time", timeField(obj.get("time")));
  e.set("outcome", choice(obj.get("outcome"), "outcome", OUTCOMES));
  const approval = object(obj.get("approval"), "approval", ["kind", "id", "key_id", "expires_at"]);
  if (!approval.has("kind")) throw shapeError("missing field `kind`");
  e.set("approval", new Map([
    ["kind", choice(approval.get("kind"), "kind", APPROVAL_KINDS)],
    ["id", optStr(approval.get("id"), "id")],
    ["key_id", optStr(approval.get("key_id"), "key_id")],
    ["expires_at", optStr(approval.get("expires_at"), "expires_at")],
  ]));
  e.set("replay_of", entryRef(obj.get("replay_of") ?? null, "replay_of"));
  const effects = obj.get("effects") ?? null;
  e.set("effects", effects === null ? null : choice(effects, "effects", EFFECTS));
  const registry = obj.get("registry") ?? null;
  e.set("registry", registry === null ? null : hashField(registry, "registry"));
  e.set("principal", optStr(obj.get("principal"), "principal"));
  e.set("redacts", entryRef(obj.get("redacts") ?? null, "redacts"));
  return e;
}

/** `replay_of` or `redacts`: an entry by index and leaf hash. */
function entryRef(value, name) {
  if (value === null) return null;
  const r = object(value, name, ["index", "leaf_hash"]);
  for (const f of ["index", "leaf_hash"]) if (!r.has(f)) throw shapeError(`missing field \`${f}\``);
  return new Map([["index", u64(r.get("index"), "index")], ["leaf_hash", hashField(r.get("leaf_hash"), "leaf_hash")]]);
}

function validate(e) {
  if (e.get("index") > MAX_INDEX) throw invalidField("index");
  if (!/^[a-z0-9_]{1,64}$/.test(e.get("reason"))) throw invalidField("reason");
  if (!e.get("origin")) throw invalidField("origin");
  if (e.get("index") === 0n && !equal(b64decode(e.get("prev")), new Uint8Array(32))) throw invalidField("prev");
  const replay = e.get("replay_of");
  if (replay !== null && replay.get("index") >= e.get("index")) throw invalidField("replay_of");
  const redacts = e.get("redacts");
  if (redacts !== null && redacts.get("index") >= e.get("index")) throw invalidField("redacts");
  if ((replay !== null) !== (e.get("outcome") === "replayed")) throw invalidField("replay_of");
  if ((redacts !== null) !== (e.get("outcome") === "redacted")) throw invalidField("redacts");
  if (e.get("outcome") === "redacted" && !REDACTION_REASONS.includes(e.get("reason"))) throw invalidField("reason");
  const principal = e.get("principal");
  if (principal !== null && !/^[0-9a-f]{16}$/.test(principal)) throw invalidField("principal");
  if (["rejected", "replayed", "redacted"].includes(e.get("outcome")) && e.get("effects") !== null) throw invalidField("effects");
}

/** Decodes an entry canonically, in the order of docs/FORMATS.md §5; a plain object. */
export function decodeEntry(text) {
  let obj;
  try {
    obj = loads(text);
  } catch (e) {
    throw shapeError(e.message);
  }
  const fields = shape(obj);
  if (fields.get("v") !== 1n) throw new EntryError(`unknown entry version ${fields.get("v")}`);
  validate(fields);
  const out = new Map([...fields].filter(([k, v]) => !(OMITTED_WHEN_ABSENT.includes(k) && v === null)));
  if (canonical(out) !== text) throw new EntryError("entry bytes are not canonical");
  return toPlain(fields);
}

/** A Map-and-BigInt value as plain objects and numbers (for display). */
export function toPlain(v) {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, toPlain(x)]));
  if (Array.isArray(v)) return v.map(toPlain);
  if (typeof v === "bigint") return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  return v;
}

// ---- Receipts (docs/FORMATS.md §11–13) --------------------------------

class ShapeError extends Error {}
const shape2 = (why) => new ShapeError(why);
const RECEIPT_FIELDS = ["format", "entry", "entry_signature", "leaf_index", "inclusion_proof", "checkpoint", "salts"];

function fields(obj, allowed, required, what) {
  if (!(obj instanceof Map)) throw shape2(`invalid type, expected ${what}`);
  for (const k of obj.keys()) if (!allowed.includes(k)) throw shape2(`unknown field \`${k}\``);
  for (const k of required) if (!obj.has(k)) throw shape2(`missing field \`${k}\``);
  return obj;
}

function salts(v) {
  if (v === null || v === undefined) return null;
  const o = fields(v, ["payload", "result"], ["payload"], "salts");
  const r = o.get("result") ?? null;
  return { payload: str(o.get("payload"), "payload", shape2), result: r === null ? null : str(r, "result", shape2) };
}

function receiptFromJson(obj) {
  obj = fields(obj, RECEIPT_FIELDS, RECEIPT_FIELDS.slice(0, -1), "struct Receipt");
  const proof = fields(obj.get("inclusion_proof"), ["tree_size", "hashes"], ["tree_size", "hashes"], "struct InclusionProof");
  if (!Array.isArray(proof.get("hashes"))) throw shape2("invalid type for `hashes`, expected a sequence");
  const hashes = proof.get("hashes").map((h) => {
    const raw = b64decode(str(h, "hashes", shape2));
    if (raw === null) throw shape2("hash is not valid standard base64");
    if (raw.length !== 32) throw shape2(`hash must be 32 bytes, got ${raw.length}`);
    return raw;
  });
  return {
    format: str(obj.get("format"), "format", shape2),
    entry: str(obj.get("entry"), "entry", shape2),
    entry_signature: str(obj.get("entry_signature"), "entry_signature", shape2),
    leaf_index: u64(obj.get("leaf_index"), "leaf_index", shape2),
    tree_size: u64(proof.get("tree_size"), "tree_size", shape2),
    hashes,
    checkpoint: str(obj.get("checkpoint"), "checkpoint", shape2),
    salts: salts(obj.get("salts")),
  };
}

/** tlog-proof@v1 text (docs/FORMATS.md §12) as a receipt, strictly. */
function importTlogProof(text) {
  let rest = text;
  const bad = (name) => new Error(`tlog-proof: bad or missing \`${name}\` line`);
  const notBundle = () => new Error("tlog-proof: extra data is not an OpenExec receipt bundle");
  const next = (name) => {
    const at = rest.indexOf("\n");
    if (at < 0) throw bad(name);
    const line = rest.slice(0, at);
    rest = rest.slice(at + 1);
    return line;
  };
  if (next("header") !== TLOG_PROOF_HEADER) throw bad("header");
  const extraLine = next("extra");
  if (!extraLine.startsWith("extra ")) throw bad("extra");
  const extra = b64decode(extraLine.slice(6));
  if (extra === null) throw notBundle();
  let bundle;
  let extraText;
  try {
    extraText = new TextDecoder("utf-8", { fatal: true }).decode(extra);
    const o = fields(loads(extraText), ["format", "entry", "entry_signature", "salts"], ["format", "entry", "entry_signature"], "bundle");
    bundle = new Map(["format", "entry", "entry_signature"].map((k) => [k, str(o.get(k), k, shape2)]));
    const s = salts(o.get("salts"));
    if (s !== null) bundle.set("salts", new Map([["payload", s.payload], ["result", s.result]]));
  } catch {
    throw notBundle();
  }
  if (canonical(bundle) !== extraText) throw notBundle();
  const indexLine = next("index");
  if (!indexLine.startsWith("index ")) throw bad("index");
  const leafIndex = parseDecimal(indexLine.slice(6));
  if (leafIndex === null) throw bad("index");
  const hashes = [];
  for (;;) {
    const line = next("proof");
    if (!line) break;
    const raw = b64decode(line);
    if (raw === null || raw.length !== 32) throw bad("proof");
    hashes.push(raw);
  }
  let note;
  try {
    note = parseNote(rest);
  } catch {
    throw new Error("tlog-proof: malformed checkpoint");
  }
  const body = parseCheckpointBody(note.text);
  if (!body) throw new Error("tlog-proof: malformed checkpoint");
  const s = bundle.get("salts");
  return {
    format: bundle.get("format"),
    entry: bundle.get("entry"),
    entry_signature: bundle.get("entry_signature"),
    leaf_index: leafIndex,
    tree_size: body.size,
    hashes,
    checkpoint: rest,
    salts: s ? { payload: s.get("payload"), result: s.get("result") } : null,
  };
}

/** A bare receipt, an object whose `receipt` holds one, or tlog-proof text. */
export function parseReceipt(text) {
  if (text.startsWith(TLOG_PROOF_HEADER)) return importTlogProof(text);
  try {
    return receiptFromJson(loads(text));
  } catch {
    // not a bare receipt: perhaps an /execute response
  }
  let value;
  try {
    value = loads(text, { unique: false });
  } catch (e) {
    throw new Error(`receipt is not JSON: ${e.message}`);
  }
  let inner = value instanceof Map ? value.get("receipt") : undefined;
  if (!(inner instanceof Map)) inner = value;
  try {
    return receiptFromJson(inner);
  } catch (e) {
    throw new Error(`receipt has the wrong shape: ${e.message}`);
  }
}

/** The first failed check of a receipt; `kind` names it. */
export class ReceiptError extends Error {
  constructor(message, kind) {
    super(message);
    this.kind = kind;
  }
}

/**
 * Verifies a parsed receipt against the log key, in the order of
 * docs/FORMATS.md §13; with `trusted` ({checkpoint, proof}) also its
 * consistency with that later checkpoint. Returns what it established.
 */
export async function verifyReceipt(r, log, trusted = null) {
  if (r.format !== RECEIPT_FORMAT) throw new ReceiptError(`receipt format is not ${RECEIPT_FORMAT}`, "format");
  const data = enc.encode(r.entry);
  let entry;
  try {
    entry = decodeEntry(r.entry);
  } catch (e) {
    throw new ReceiptError(`entry: ${e.message}`, "entry");
  }
  if (entry.origin !== log.name) {
    throw new ReceiptError(`entry origin ${rustDebug(entry.origin)} is not the log origin ${rustDebug(log.name)}`, "origin");
  }
  if (BigInt(entry.index) !== r.leaf_index) {
    throw new ReceiptError(`leaf index ${r.leaf_index} does not match the entry index ${entry.index}`, "index");
  }
  const sig = b64decode(r.entry_signature);
  if (sig === null || sig.length !== 64 || !(await ed25519Verify(log.pub, concat(ENTRY_CONTEXT, data), sig))) {
    throw new ReceiptError("entry signature is invalid", "entry_signature");
  }
  let checkpoint;
  try {
    checkpoint = await openCheckpoint(r.checkpoint, log);
  } catch (e) {
    throw new ReceiptError(`checkpoint: ${e.message}`, "checkpoint");
  }
  if (r.tree_size !== checkpoint.size) {
    throw new ReceiptError(`inclusion proof is for tree size ${r.tree_size} but the checkpoint has size ${checkpoint.size}`, "tree_size");
  }
  const leaf = await leafHash(data);
  let path;
  try {
    path = await verifyInclusion(r.hashes, r.leaf_index, r.tree_size, leaf, checkpoint.root);
  } catch (e) {
    throw new ReceiptError(`inclusion proof: ${e.message}`, "inclusion");
  }
  if (trusted) {
    let later;
    try {
      later = await openCheckpoint(trusted.checkpoint, log);
    } catch (e) {
      throw new ReceiptError(`trusted checkpoint: ${e.message}`, "trusted_checkpoint");
    }
    try {
      await verifyConsistency(trusted.proof, checkpoint.size, later.size, checkpoint.root, later.root);
    } catch (e) {
      throw new ReceiptError(`consistency with the trusted checkpoint: ${e.message}`, "consistency");
    }
  }
  return { entry, leaf, checkpoint, path, receipt: r };
}

/** The success line of one receipt, as `openexec verify` prints it. */
export function describe(v, trusted) {
  const e = v.entry;
  const replay = e.replay_of ? `, a replay of entry ${e.replay_of.index}`
    : e.redacts ? `, a redaction of entry ${e.redacts.index}` : "";
  const effects = e.effects ? `, effects ${e.effects}` : "";
  const registry = e.registry ? `, handler registry ${e.registry}` : "";
  let line = `entry ${e.index} (${e.action} ${e.outcome} ${e.exec_id}${replay}${effects}${registry}) is in ${e.origin} at tree size ${v.checkpoint.size}`;
  if (trusted) line += ", consistent with the trusted checkpoint";
  return line;
}

// ---- `openexec verify`, one file ---------------------------------------

class Failure extends Error {}

/** `str::lines`. */
function lines(text) {
  const pieces = text.split("\n");
  if (pieces.length && pieces[pieces.length - 1] === "") pieces.pop();
  return pieces.map((p) => (p.endsWith("\r") ? p.slice(0, -1) : p));
}

/** A consistency proof: base64 lines, or JSON (a list, or an object with `hashes`). */
export function parseHashList(text) {
  const one = (item) => {
    const raw = typeof item === "string" ? b64decode(item) : null;
    if (raw === null) throw new Failure("consistency proof: hash is not valid standard base64");
    if (raw.length !== 32) throw new Failure(`consistency proof: hash must be 32 bytes, got ${raw.length}`);
    return raw;
  };
  let value;
  try {
    value = loads(text, { unique: false });
  } catch (e) {
    if (!(e instanceof JSONError)) throw e;
    return lines(text).filter((l) => l).map(one);
  }
  if (value instanceof Map && value.has("hashes")) value = value.get("hashes");
  if (!Array.isArray(value)) throw new Failure("consistency proof: invalid type, expected a sequence");
  return value.map(one);
}

/**
 * Verifies the receipts of one text as `openexec verify --key K FILE
 * [--checkpoint C --consistency P]` does, and returns the lines it would
 * print and whether it would exit 0. `name` is the file's name (it
 * appears in some lines); `key` the verifier key text; `checkpoint` and
 * `consistency` texts or null. Each verified receipt is in `verified`.
 */
export async function verifyText({ receipt, name = "receipt", key, checkpoint = null, consistency = null }) {
  const out = [];
  const verified = [];
  try {
    const line = await run({ receipt, name, key, checkpoint, consistency }, out, verified);
    out.push(`OK: ${line}`);
    return { ok: true, lines: out, verified };
  } catch (e) {
    if (!(e instanceof Failure)) throw e;
    out.push(`FAILED: ${e.message}`);
    return { ok: false, lines: out, verified };
  }
}

async function run({ receipt, name, key, checkpoint, consistency }, out, verified) {
  const sources = [];
  if (receipt.startsWith(TLOG_PROOF_HEADER) || isJson(receipt)) {
    sources.push({ place: name, text: receipt });
  } else {
    lines(receipt).forEach((l, i) => {
      if (rustTrim(l)) sources.push({ place: `${name}:${i + 1}`, text: l });
    });
  }
  const proof = consistency === null ? null : parseHashList(consistency);
  const trusted = checkpoint === null ? null : { checkpoint, proof: proof ?? [] };
  let log;
  try {
    log = await parseKey(key, ALG_ED25519);
  } catch (e) {
    throw new Failure(`verifier key: ${e.message}`);
  }
  const one = sources.length === 1;
  const results = [];
  for (const s of sources) {
    let r;
    try {
      r = parseReceipt(s.text);
    } catch (e) {
      results.push({ kind: "unreadable", message: e.message });
      continue;
    }
    try {
      const v = await verifyReceipt(r, log, trusted);
      verified.push(v);
      results.push({ kind: "ok", message: one ? describe(v, trusted !== null) : "" });
    } catch (e) {
      if (!(e instanceof ReceiptError)) throw e;
      const hint = e.kind === "consistency" && proof === null;
      const message = hint ? `${e.message} (the trusted checkpoint is for another tree size: add --consistency)` : e.message;
      results.push({ kind: "invalid", message });
    }
  }
  if (one) {
    const [{ kind, message }] = results;
    if (kind === "ok") return message;
    throw new Failure(kind === "unreadable" ? `${sources[0].place}: ${message}` : message);
  }
  if (!sources.length) throw new Failure("no receipt in the files given");
  const failures = sources.flatMap((s, i) => (results[i].kind === "ok" ? [] : [`${s.place}: ${results[i].message}`]));
  for (const f of failures) out.push(`FAILED: ${f}`);
  if (!failures.length) return `${sources.length} receipts verified`;
  throw new Failure(`${failures.length} of ${sources.length} receipts failed`);
}
