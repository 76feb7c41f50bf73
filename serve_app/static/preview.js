// The page document drawn as simple HTML, for a sandboxed frame (no script runs there).
// Every value is escaped; links and sources are kept only when http(s) or relative.

const escape = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const safeUrl = (value) => {
  const url = String(value ?? "").trim();
  return /^(https?:\/\/|\/|#|\?|mailto:|tel:)/i.test(url) || /^[\w.\-\/]+$/.test(url) ? url : "";
};
const color = (value, fallback) => (/^#[0-9a-f]{3,8}$/i.test(value ?? "") ? value : fallback);

const TEXT_KEYS = ["title", "text", "heading", "headline", "subtitle", "subheadline", "content",
  "label", "caption", "description", "body", "quote", "author", "name", "logo_text", "price"];

function textOf(props) {
  return TEXT_KEYS.filter((k) => typeof props[k] === "string" || typeof props[k] === "number")
    .map((k) => `<p class="t-${k}">${escape(props[k])}</p>`).join("");
}

function listOf(props) {
  const list = Object.values(props).find((v) => Array.isArray(v) && v.length && typeof v[0] === "object");
  if (!list) return "";
  return `<ul class="items">${list.slice(0, 12).map((item) =>
    `<li>${textOf(item) || escape(Object.values(item).filter((v) => typeof v === "string")[0])}</li>`).join("")}</ul>`;
}

function component(c) {
  const p = c.props || {};
  const span = Math.min(12, Math.max(1, Number(c.span) || 12));
  const href = safeUrl(p.href || p.cta_href || p.link_href);
  const src = safeUrl(p.src || p.image_src || p.photo_src);
  let inner;
  switch (c.type) {
    case "heading": inner = `<h2>${escape(p.text)}</h2>`; break;
    case "text": inner = `<p>${escape(p.content ?? p.text)}</p>`; break;
    case "button": inner = `<a class="button" href="${escape(href || "#")}">${escape(p.label || "Button")}</a>`; break;
    case "link": inner = `<a href="${escape(href || "#")}">${escape(p.label || p.text || href)}</a>`; break;
    case "image": inner = src ? `<img src="${escape(src)}" alt="${escape(p.alt)}">` : `<div class="ph">${escape(p.alt || "image")}</div>`; break;
    case "divider": inner = "<hr>"; break;
    case "spacer": inner = `<div style="height:2rem"></div>`; break;
    case "embed": inner = `<div class="ph">embed: ${escape(p.kind || "")} ${escape(p.title || "")}</div>`; break;
    default: inner = textOf(p) + listOf(p) || `<div class="ph">${escape(c.type)}</div>`;
  }
  const kids = (c.children || []).map(component).join("");
  return `<div class="c c-${escape(c.type)}" data-type="${escape(c.type)}" style="grid-column: span ${span}">
    <span class="tag">${escape(c.type)}</span>${inner}${kids}</div>`;
}

function section(s) {
  const cols = Math.min(12, Math.max(1, Number(s.layout?.columns) || 1));
  const gap = Math.min(128, Math.max(0, Number(s.layout?.gap_px) || 24));
  return `<section class="s s-${escape(s.role)}" data-section="${escape(s.id)}" aria-label="${escape(s.name)}">
    <h3 class="name">${escape(s.name)}</h3>
    <div class="grid" style="grid-template-columns: repeat(${cols}, minmax(0, 1fr)); gap: ${gap}px">
      ${(s.components || []).map((c) => component({ ...c, span: Math.ceil((c.span || 12) * cols / 12) })).join("")}
    </div></section>`;
}

/** The whole preview document for `srcdoc`. */
export function renderPage(page) {
  const palette = page.theme?.palette || {};
  const primary = color(palette.primary, "#1d4ed8");
  const text = color(palette.text, "#0f172a");
  const background = color(palette.background, "#ffffff");
  const font = /^[\w\s,\-]+$/.test(page.theme?.font_body || "") ? page.theme.font_body : "system-ui, sans-serif";
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(page.title)}</title><style>
    body { margin: 0; font: 15px/1.5 ${font}; color: ${text}; background: ${background}; }
    .s { padding: 1.5rem; border-bottom: 1px dashed #cbd5e1; } .name { margin: 0 0 .5rem; font-size: .75rem; text-transform: uppercase; color: #64748b; }
    .grid { display: grid; } .c { border: 1px solid #e2e8f0; border-radius: 6px; padding: .6rem; min-width: 0; overflow-wrap: anywhere; }
    .tag { font-size: .65rem; color: #94a3b8; display: block; } .button { display: inline-block; background: ${primary}; color: white; padding: .4rem .9rem; border-radius: 6px; text-decoration: none; }
    img { max-width: 100%; } .ph { background: #f1f5f9; color: #64748b; padding: 1rem; text-align: center; border-radius: 4px; }
    h2 { color: ${primary}; margin: .2rem 0; } p { margin: .2rem 0; }
  </style></head><body>${(page.sections || []).map(section).join("")}</body></html>`;
}

/** The JSON Patch as readable lines: [kind, text]. */
export function describePatch(patch) {
  return (patch || []).map((op) => {
    const value = op.value === undefined ? "" : JSON.stringify(op.value);
    const shown = value.length > 140 ? value.slice(0, 140) + "…" : value;
    return [op.op, `${op.op} ${op.path}${op.from ? " from " + op.from : ""} ${shown}`.trim()];
  });
}
