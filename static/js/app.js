/* Stepwise: what htmx and HTML cannot do (pages work without it); a module, as the CSP forbids inline scripts. */

// idiomorph would take away the "open" a reader gave a <details> (not in the server's markup); htmx cannot keep it.
const keepOpen = (name, element, change) => !(name === "open" && change === "remove");
if (window.Idiomorph) window.Idiomorph.defaults.callbacks.beforeAttributeUpdated = keepOpen;

// <details class="dropdown"> closes only by its summary, and no request is involved: other open menus are closed here.
function closeMenus(keep, restoreFocus) {
  document.querySelectorAll("details.dropdown[open]").forEach((details) => {
    if (keep && details.contains(keep)) return;
    const focus = restoreFocus && details.contains(document.activeElement);
    details.removeAttribute("open");
    if (focus) details.querySelector("summary").focus();
  });
}
// HTML has no outside click for <details>: a click elsewhere or on one of its items closes it.
document.addEventListener("click", (event) => {
  closeMenus(event.target.closest(".dropdown-menu a, .dropdown-menu button") ? null : event.target, false);
});

const MOVES = { ArrowDown: 1, ArrowUp: -1, Home: 0, End: 0 };
// Keys are not requests: Escape closes menus, arrows (Home, End) open a menu and move between its items, wrapping.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") return closeMenus(null, true);
  const details = event.target.closest && event.target.closest("details.dropdown");
  if (!details || !(event.key in MOVES) || event.altKey || event.ctrlKey || event.metaKey) return;
  const onSummary = event.target.matches("summary") && event.target.parentElement === details;
  if (onSummary && MOVES[event.key]) details.setAttribute("open", "");
  else if (!details.open || !event.target.closest(".dropdown-menu")) return;
  event.preventDefault();
  const items = [...details.querySelectorAll(".dropdown-menu .menu-item")]
    .filter((item) => !item.disabled && item.getClientRects().length > 0);
  const at = onSummary ? -1 : items.indexOf(event.target.closest(".menu-item"));
  const last = items.length - 1;
  const next = event.key === "Home" ? 0 : event.key === "End" ? last
    : at < 0 ? (MOVES[event.key] > 0 ? 0 : last) : (at + MOVES[event.key] + items.length) % items.length;
  if (items.length) items[next].focus();
});

// Dismissing asks the server nothing (htmx removes only what an answer replaces): the alert or toast starts to fade.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-dismiss]");
  if (button) button.closest(".alert, .toast").classList.add("is-leaving");
});
// CSS fades an element (dismissed, or a success after a while unless hovered) but cannot remove it: done when faded.
document.addEventListener("animationend", (event) => {
  if (event.animationName === "alert-leave" || event.animationName === "toast-leave") event.target.remove();
});

// An HX-Trigger "toast" event carries data, not markup, so htmx swaps nothing: a copy of <template id="toast-LEVEL">.
function toast(level, message) {
  const template = document.getElementById("toast-" + level) || document.getElementById("toast-info");
  if (!template || !message) return;
  const element = template.content.firstElementChild.cloneNode(true);
  element.querySelector(".toast-body").textContent = String(message);
  document.getElementById("toasts")?.appendChild(element);
}
// htmx fires a header's event but shows nothing for it (a failed answer's toast is set by config/lib/htmx_errors.py).
document.addEventListener("toast", (event) => toast(event.detail.level, event.detail.message || event.detail.value));
// A request with no answer (offline, timed out) has no header to say so: the error template's data-* texts do.
for (const name of ["sendError", "timeout"]) {
  document.addEventListener("htmx:" + name, () => toast("error", document.getElementById("toast-error").dataset[name]));
}

// The clipboard is a browser API, not a request; over plain http (no "secure context") a selected <textarea> is copied.
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = Object.assign(document.createElement("textarea"), { value: text, readOnly: true });
  area.className = "clipboard-helper";
  document.body.appendChild(area).select();
  try { if (!document.execCommand("copy")) throw new Error("copy failed"); } finally { area.remove(); }
}
// Feedback without a request: the label says "Copied" for a while (as wide as before) and #sr-status says it aloud.
function copied(button, ok) {
  const label = button.querySelector(".copy-label");
  const status = document.getElementById("sr-status");
  if (!label.hasAttribute("data-label")) label.setAttribute("data-label", label.textContent);
  button.style.minWidth = button.offsetWidth + "px";
  label.textContent = ok ? "Copied" : "Copy failed";
  button.classList.toggle("is-copied", ok);
  window.clearTimeout(button._copyTimer);
  button._copyTimer = window.setTimeout(() => {
    label.textContent = label.getAttribute("data-label");
    button.classList.remove("is-copied");
    button.style.minWidth = "";
  }, 1600);
  status.textContent = ""; // emptied first, so the same words are said again
  const words = ok ? "Copied to the clipboard" : "Could not copy; select the text and copy it by hand";
  window.setTimeout(() => { status.textContent = words; }, 50);
}
// No request either: [data-copy="text"] or [data-copy-target="#id"] (a field's value, an element's text) copies.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy], [data-copy-target]");
  if (!button) return;
  event.preventDefault();
  const selector = button.getAttribute("data-copy-target");
  const target = selector ? document.querySelector(selector) : null;
  const field = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
  const text = button.getAttribute("data-copy") || (field ? target.value : target ? target.textContent.trim() : "");
  if (text) copyText(text).then(() => copied(button, true), () => copied(button, false));
});

// The back/forward cache keeps a page despite no-store, htmx unasked: a secret shown once is emptied when left.
window.addEventListener("pagehide", () => {
  if (!document.querySelector("[data-shown-once]")) return;
  document.documentElement.setAttribute("data-shown-once-left", "");
  document.body.replaceChildren();
});
// Nor is htmx asked when such a page, or an editor (its fields stale), comes back from that cache: it is fetched again.
window.addEventListener("pageshow", (event) => {
  const stale = document.documentElement.hasAttribute("data-shown-once-left") || document.getElementById("editor");
  if (event.persisted && stale) window.location.reload();
});

// A table row cannot be a link: a click in tr[data-href] opens it (its first cell has the real link), unless selecting.
document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-href]");
  if (!row || event.target.closest("a, button, input, select, textarea, label") || String(getSelection())) return;
  const newTab = event.metaKey || event.ctrlKey || event.shiftKey || event.button === 1;
  if (newTab) window.open(row.dataset.href, "_blank", "noopener");
  else window.location.assign(row.dataset.href);
});
