// DOM helpers and the page's two drawings (an inclusion proof path, the
// activity plot). Every string from the ledger goes into the document as a
// text node or an attribute value of a fixed, harmless attribute: nothing
// here parses markup.

const SVG = "http://www.w3.org/2000/svg";

/** An HTML element with attributes and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined && v !== false) node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An SVG element with attributes and children. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  append(node, children);
  return node;
}

/** Replaces a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const short = (b64) => `${b64.slice(0, 10)}…`;

/**
 * The path of an inclusion proof, drawn from the leaf (bottom) to the
 * root (top): at each level the hash computed so far, the sibling hash
 * from the proof, and which side the sibling is on.
 *
 * steps: [{sibling, side: "left"|"right", hash}] (base64 strings),
 * leaf, root: base64; index, size: numbers or strings.
 */
export function proofPath({ steps, leaf, root, index, size, ok }) {
  const rowH = 58;
  const width = 640;
  const height = (steps.length + 2) * rowH + 10;
  const pic = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    class: "proof",
    "data-steps": steps.length,
  });
  pic.append(svg("title", {}, `Inclusion proof of leaf ${index} in a tree of ${size}: ${steps.length} hashes`));
  const yOf = (level) => height - 10 - (level + 1) * rowH;
  const box = (x, y, label, value, cls) =>
    svg(
      "g",
      { class: cls },
      svg("rect", { x, y, width: 200, height: 40, rx: 6 }),
      svg("text", { x: x + 10, y: y + 16, class: "label" }, label),
      svg("text", { x: x + 10, y: y + 32, class: "hash" }, short(value)),
    );
  const mid = 220;
  pic.append(box(mid, yOf(0), `leaf ${index}`, leaf, "node leaf"));
  steps.forEach((s, i) => {
    const y = yOf(i + 1);
    const sibX = s.side === "left" ? 10 : 430;
    pic.append(svg("line", { x1: mid + 100, y1: y + 40, x2: mid + 100, y2: y + rowH, class: "edge" }));
    pic.append(
      svg("line", { x1: s.side === "left" ? sibX + 200 : sibX, y1: yOf(i) + 20, x2: mid + (s.side === "left" ? 0 : 200), y2: y + 20, class: "edge sib" }),
    );
    pic.append(box(sibX, yOf(i), `proof[${i}] (${s.side})`, s.sibling, "node sibling"));
    const last = i === steps.length - 1;
    pic.append(box(mid, y, last ? `root, size ${size}` : `level ${i + 1}`, s.hash, last ? `node root ${ok ? "ok" : "bad"}` : "node inner"));
  });
  if (!steps.length) {
    pic.append(svg("text", { x: mid, y: yOf(1) + 30, class: "label" }, `the leaf is the root (size ${size})`));
  }
  pic.append(svg("text", { x: 10, y: 20, class: "label" }, `root ${short(root)} ${ok ? "matches the checkpoint" : "does not match"}`));
  return pic;
}

/**
 * Bars of executions and refusals per time bucket.
 * buckets: [{start: Date, executed, rejected, failed, other}]
 */
export function activityPlot(buckets) {
  const width = 760;
  const height = 200;
  const pad = 34;
  const max = Math.max(1, ...buckets.map((b) => b.executed + b.rejected + b.failed + b.other));
  const pic = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", class: "plot" });
  pic.append(svg("title", {}, "Executions and refusals over time"));
  const w = buckets.length ? (width - pad - 10) / buckets.length : 0;
  const scale = (height - 2 * pad) / max;
  buckets.forEach((b, i) => {
    let y = height - pad;
    const x = pad + i * w;
    for (const kind of ["executed", "rejected", "failed", "other"]) {
      const h = b[kind] * scale;
      if (!h) continue;
      y -= h;
      const bar = svg("rect", { x: x + 1, y, width: Math.max(1, w - 2), height: h, class: `bar ${kind}`, "data-kind": kind, "data-count": b[kind] });
      bar.append(svg("title", {}, `${b.start.toISOString()}: ${b[kind]} ${kind}`));
      pic.append(bar);
    }
  });
  pic.append(svg("line", { x1: pad, y1: height - pad, x2: width - 10, y2: height - pad, class: "axis" }));
  pic.append(svg("text", { x: 2, y: pad, class: "label" }, String(max)));
  if (buckets.length) {
    pic.append(svg("text", { x: pad, y: height - 10, class: "label" }, buckets[0].start.toISOString().slice(0, 19)));
    const end = buckets[buckets.length - 1].end ?? buckets[buckets.length - 1].start;
    pic.append(svg("text", { x: width - 180, y: height - 10, class: "label" }, end.toISOString().slice(0, 19)));
  }
  return pic;
}
