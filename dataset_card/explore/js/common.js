// Shared by every callback of the page. Everything from the data goes through esc() before it
// becomes HTML: ids and captions are untrusted text, never markup.
const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g,
  (ch) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[ch]);
const num = (x, digits) => (x == null || Number.isNaN(x)) ? "\u2014" : Number(x).toFixed(digits);
const rowsHtml = (pairs) => pairs.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join("");
