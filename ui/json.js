// JSON as the OpenExec formats need it (docs/FORMATS.md §1): a strict
// reader and RFC 8785 (JCS) bytes. No DOM code: tests import it directly.
//
// JSON.parse is not enough: it takes repeated keys (the last wins), lone
// surrogates, and reads every number as a double, so that 2^64 and
// 2^64 - 1 look alike. This reader keeps integer literals exact (BigInt),
// other numbers as doubles, objects as Maps (no prototype games with keys
// such as "__proto__"), and refuses what a strict reader refuses.

/** Text that is not strict JSON. */
export class JSONError extends Error {}

// A strict reader refuses 128 arrays or objects open at once (serde_json).
const MAX_DEPTH = 127;
const WS = new Set([" ", "\t", "\n", "\r"]);
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

class Reader {
  constructor(text, { unique = true, strict = true } = {}) {
    this.t = text;
    this.i = 0;
    this.unique = unique;
    this.strict = strict;
  }

  fail(why) {
    throw new JSONError(`${why} at character ${this.i}`);
  }

  ws() {
    while (this.i < this.t.length && WS.has(this.t[this.i])) this.i += 1;
  }

  value(depth) {
    this.ws();
    const c = this.t[this.i];
    if (c === "{") return this.object(depth + 1);
    if (c === "[") return this.array(depth + 1);
    if (c === '"') return this.string();
    if (c === "t") return this.word("true", true);
    if (c === "f") return this.word("false", false);
    if (c === "n") return this.word("null", null);
    return this.number();
  }

  word(w, v) {
    if (this.t.startsWith(w, this.i)) {
      this.i += w.length;
      return v;
    }
    return this.fail("expected value");
  }

  number() {
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.t);
    if (!m) return this.fail("expected value");
    this.i = NUMBER.lastIndex;
    const text = m[0];
    // A strict reader takes "-0" for the double -0.0, not the integer 0.
    if (!m[1] && !m[2] && text !== "-0") return BigInt(text);
    const n = Number(text);
    if (this.strict && !Number.isFinite(n)) this.fail("number out of range");
    return n;
  }

  string() {
    this.i += 1;
    let out = "";
    for (;;) {
      if (this.i >= this.t.length) this.fail("EOF while parsing a string");
      const c = this.t[this.i];
      const code = c.charCodeAt(0);
      if (c === '"') {
        this.i += 1;
        break;
      }
      if (code < 0x20) this.fail("control character in a string");
      if (c !== "\\") {
        out += c;
        this.i += 1;
        continue;
      }
      const e = this.t[this.i + 1];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (e in simple) {
        out += simple[e];
        this.i += 2;
      } else if (e === "u") {
        const hex = this.t.slice(this.i + 2, this.i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("invalid escape");
        out += String.fromCharCode(parseInt(hex, 16));
        this.i += 6;
      } else {
        this.fail("invalid escape");
      }
    }
    if (this.strict && hasLoneSurrogate(out)) this.fail("lone surrogate in a string");
    return out;
  }

  array(depth) {
    if (this.strict && depth > MAX_DEPTH) this.fail("recursion limit exceeded");
    this.i += 1;
    const out = [];
    this.ws();
    if (this.t[this.i] === "]") {
      this.i += 1;
      return out;
    }
    for (;;) {
      out.push(this.value(depth));
      this.ws();
      const c = this.t[this.i];
      this.i += 1;
      if (c === "]") return out;
      if (c !== ",") this.fail("expected `,` or `]`");
    }
  }

  object(depth) {
    if (this.strict && depth > MAX_DEPTH) this.fail("recursion limit exceeded");
    this.i += 1;
    const out = new Map();
    this.ws();
    if (this.t[this.i] === "}") {
      this.i += 1;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.t[this.i] !== '"') this.fail("key must be a string");
      const key = this.string();
      this.ws();
      if (this.t[this.i] !== ":") this.fail("expected `:`");
      this.i += 1;
      const v = this.value(depth);
      if (this.unique && out.has(key)) this.fail(`duplicate field \`${key}\``);
      out.set(key, v);
      this.ws();
      const c = this.t[this.i];
      this.i += 1;
      if (c === "}") return out;
      if (c !== ",") this.fail("expected `,` or `}`");
    }
  }

  whole() {
    const v = this.value(0);
    this.ws();
    if (this.i !== this.t.length) this.fail("trailing characters");
    return v;
  }
}

function hasLoneSurrogate(s) {
  for (let i = 0; i < s.length; i += 1) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return true;
      i += 1;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true;
    }
  }
  return false;
}

/**
 * Parses strict JSON: integers as BigInt, other numbers as doubles,
 * objects as Maps. With `unique` a repeated key is an error, without it
 * the last one wins.
 */
export function loads(text, { unique = true } = {}) {
  try {
    return new Reader(text, { unique }).whole();
  } catch (e) {
    if (e instanceof RangeError) throw new JSONError("recursion limit exceeded");
    throw e;
  }
}

/** Whether the text is one JSON value, any nesting and number size. */
export function isJson(text) {
  try {
    new Reader(text, { unique: false, strict: false }).whole();
    return true;
  } catch {
    return false;
  }
}

const TWO_53 = 2n ** 53n;

/** A number as ECMAScript writes it (RFC 8785 §3.2.2.3). */
function number(v) {
  if (typeof v === "bigint") {
    if (v < TWO_53 && v > -TWO_53) return v.toString();
    return number(Number(v));
  }
  if (!Number.isFinite(v)) throw new JSONError("NaN and infinities have no JSON form");
  return Object.is(v, -0) ? "0" : String(v);
}

/** RFC 8785 text of a value read by `loads` (or built of the same kinds). */
export function canonical(v) {
  if (v === null) return "null";
  if (v === true) return "true";
  if (v === false) return "false";
  if (typeof v === "bigint" || typeof v === "number") return number(v);
  // JSON.stringify escapes exactly what RFC 8785 does for well-formed text.
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v instanceof Map) {
    // Default string order is by UTF-16 code units, as RFC 8785 sorts.
    const keys = [...v.keys()].sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v.get(k))}`).join(",")}}`;
  }
  throw new JSONError("value has no JSON form");
}
