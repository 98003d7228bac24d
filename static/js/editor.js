/* Stepwise: the workflow editor beyond htmx (autosave itself is hx-trigger "input changed delay:500ms, change"). */

// "Unsaved", "Saving…", "retrying" follow edits and retries, which htmx does not track: the save state says them.
function saveState(text, kind) {
  const state = document.getElementById("save-state");
  if (state) Object.assign(state, { textContent: text, className: "save-state is-" + kind }); // is-pending, is-error
}
// The autosaving field an event is about, if any (htmx events have no selector filter).
const autosaveField = (element) => (element?.matches?.("[data-autosave-field]") ? element : null);

// htmx tracks requests, not edits: a field is data-dirty from typing until its save is answered (see oobBeforeSwap).
document.addEventListener("input", (event) => {
  if (!autosaveField(event.target)) return;
  event.target.setAttribute("data-dirty", "typed");
  saveState("Unsaved changes…", "pending");
});
// htmx keeps no per-field state: the value sent is kept, to tell "typed again meanwhile" from "saved" on the answer.
document.addEventListener("htmx:beforeRequest", (event) => {
  const field = autosaveField(event.detail.elt);
  if (!field) return;
  field.setAttribute("data-dirty", "sending");
  field.setAttribute("data-sending", field.value);
  saveState("Saving…", "pending");
});
// htmx does not retry: a save that failed (not refused: 409, 422) is sent again after 3 s.
document.addEventListener("htmx:afterRequest", (event) => {
  const field = autosaveField(event.detail.elt);
  const status = event.detail.xhr ? event.detail.xhr.status : 0;
  if (!field) return;
  if (event.detail.successful) field.setAttribute("data-saved", field.getAttribute("data-sending"));
  if (event.detail.successful || status === 409 || status === 422) {
    // Typed again meanwhile: still dirty, its own request is on its way.
    if (field.getAttribute("data-dirty") === "sending" || status === 422) field.removeAttribute("data-dirty");
    return;
  }
  field.setAttribute("data-dirty", "typed");
  saveState("Not saved yet, retrying…", "error");
  window.setTimeout(() => {
    if (field.isConnected && field.getAttribute("data-dirty") === "typed") window.htmx.trigger(field, "change");
  }, 3000);
});
// "changed" is per trigger: leaving a field fires "change" with the value "input" saved, which would now be a conflict.
document.addEventListener("htmx:confirm", (event) => {
  const field = autosaveField(event.detail.elt);
  const unchanged = field && !field.hasAttribute("data-dirty") && field.value === field.getAttribute("data-saved");
  if (unchanged) event.preventDefault();
});
// hx-swap-oob has no condition: the sync poll skips a field being typed in or saved, and a conflict being answered.
document.addEventListener("htmx:oobBeforeSwap", (event) => {
  const { target, fragment } = event.detail;
  const active = document.activeElement;
  const typing = target.matches("[data-dirty]") || target.querySelector("[data-dirty]");
  const answering = active?.closest(".conflict") && target.contains(active) && fragment.querySelector(".conflict");
  if (typing || answering) event.detail.shouldSwap = false;
});
// htmx cannot send while the page unloads; sendBeacon can: a field typed in but not sent yet.
window.addEventListener("pagehide", () => {
  document.querySelectorAll('[data-autosave-field][data-dirty="typed"]').forEach((field) => {
    const data = new FormData();
    data.append(field.name, field.value);
    for (const name of ["rev-" + field.name, "step_key", "csrfmiddlewaretoken"]) {
      const input = field.form && field.form.elements.namedItem(name);
      if (input && input.value !== undefined) data.append(name, input.value);
    }
    if (navigator.sendBeacon) navigator.sendBeacon(field.getAttribute("hx-post"), data);
  });
});

// Text editing is not a request: a value is put in a field, the cursor after it, and autosaved as if typed.
function typeInto(field, value, caret) {
  field.value = value;
  field.focus();
  if (caret !== undefined) field.setSelectionRange(caret, caret);
  field.dispatchEvent(new Event("input", { bubbles: true }));
}
let lastTemplateField = null;
// Where [data-insert] puts its text: the last focused template field (htmx knows no focus history).
document.addEventListener("focusin", (event) => {
  if (event.target.matches("[data-template-field]")) lastTemplateField = event.target;
});
// [data-insert] puts {{ name }} at the cursor of that field if in this panel, else of the field after the picker.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-insert]");
  if (!button) return;
  event.preventDefault();
  const panel = button.closest("#panel");
  const recent = lastTemplateField?.isConnected && (!panel || panel.contains(lastTemplateField)) && lastTemplateField;
  const field = recent || button.closest("[data-picker]").parentElement.querySelector("[data-template-field]");
  if (!field) return;
  const text = "{{ " + button.getAttribute("data-insert") + " }}";
  const start = field.selectionStart ?? field.value.length;
  const end = field.selectionEnd ?? start;
  typeInto(field, field.value.slice(0, start) + text + field.value.slice(end), start + text.length);
});
// Text editing too: "Use ticket" ([data-fix-bad]) rewrites {{ tiket… }} in its slot's field, keeping the rest.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-fix-bad]");
  const field = button && document.querySelector('[aria-describedby~="' + button.getAttribute("data-fix-slot") + '"]');
  if (!field) return;
  event.preventDefault();
  const bad = button.getAttribute("data-fix-bad").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp("(\\{\\{\\s*)" + bad + "(?=[\\s.|}])", "g");
  typeInto(field, field.value.replace(pattern, "$1" + button.getAttribute("data-fix-good")));
});

// A key, no request: Escape in the title (input[data-escape-reset]) puts the saved name back.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || !event.target.matches("input[data-escape-reset]")) return;
  event.target.value = event.target.getAttribute("data-escape-reset");
  event.target.blur();
});
// A value on the page alone: a range input shows it in its <output id> ([data-range-output]) while sliding.
document.addEventListener("input", (event) => {
  const output = document.getElementById(event.target.getAttribute("data-range-output") || "-");
  if (output) output.textContent = event.target.value;
});

// htmx swaps elements, not one attribute: a field whose problems slot (arrived out of band) lists some is aria-invalid.
function markInvalid(root) {
  for (const slot of root.matches(".field-issues") ? [root] : root.querySelectorAll(".field-issues")) {
    const current = document.getElementById(slot.id);
    const invalid = current && current.querySelector("li") !== null;
    document.querySelectorAll('[aria-describedby~="' + slot.id + '"]').forEach((control) => {
      if (invalid) control.setAttribute("aria-invalid", "true");
      else if (current) control.removeAttribute("aria-invalid");
    });
  }
}
// Slots are checked in what htmx swapped in, out-of-band pieces too (they fire htmx:load when settled).
document.addEventListener("htmx:load", (event) => markInvalid(event.target));

// A swap moves no focus: a new panel gets it (scrolled to on a phone) and its card is marked; else #editor[data-focus].
document.addEventListener("htmx:afterSettle", (event) => {
  const panel = document.getElementById("panel");
  const editor = document.getElementById("editor");
  if (panel && event.detail.target && event.detail.target.id === "panel") {
    const name = panel.dataset.panel === "step" ? "step-" + panel.dataset.panelIndex : panel.dataset.panel;
    for (const card of document.querySelectorAll("[data-panel-card]")) {
      card.classList.toggle("is-active", card.dataset.panelCard === name);
    }
    if (window.matchMedia("(max-width: 900px)").matches) panel.scrollIntoView({ block: "start" });
    panel.focus({ preventScroll: true });
  }
  const focus = editor?.dataset.focus && document.querySelector(editor.dataset.focus);
  if (editor) editor.removeAttribute("data-focus");
  if (focus) focus.focus();
});

let dragged = null;
// htmx has no drag events: the step under a dragged one is marked with the side it would land on (it takes its place).
function dropOn(event) {
  const item = event.target.closest?.("li.flow-step[data-index]");
  document.querySelectorAll(".is-drop-before, .is-drop-after").forEach((other) => {
    if (other !== item) other.classList.remove("is-drop-before", "is-drop-after");
  });
  if (!dragged || !item || item === dragged) return null;
  item.classList.add(Number(item.dataset.index) < Number(dragged.dataset.index) ? "is-drop-before" : "is-drop-after");
  return item;
}
// A drag starts on li.flow-step[draggable], not in its fields (that is selecting text); Move up/down do it by keyboard.
document.addEventListener("dragstart", (event) => {
  const item = event.target.closest?.("li.flow-step[draggable]");
  if (!item || event.target.closest("input, textarea, select")) return;
  dragged = item;
  item.classList.add("is-dragging");
  event.dataTransfer.effectAllowed = "move";
  event.dataTransfer.setData("text/plain", item.dataset.index);
});
// A drag event, not htmx's: a drop is allowed only where dragover is cancelled, over another step.
document.addEventListener("dragover", (event) => dropOn(event) && event.preventDefault());
// A drag event too: dropped or not, the drag's marks go.
document.addEventListener("dragend", () => {
  if (dragged) dragged.classList.remove("is-dragging");
  dragged = null;
  dropOn({ target: document.body });
});
// The drop event starts the request htmx cannot: htmx.ajax POSTs the new order, at the revision drawn (data-base).
document.addEventListener("drop", (event) => {
  const item = dropOn(event);
  if (!item) return;
  event.preventDefault();
  const flow = item.closest("#flow");
  const from = dragged.dataset.index;
  const order = [...flow.querySelectorAll("li.flow-step[data-index]")].map((li) => li.dataset.index);
  order.splice(order.indexOf(from), 1);
  order.splice(order.indexOf(item.dataset.index) + (item.classList.contains("is-drop-after") ? 1 : 0), 0, from);
  const values = { order: order.join(","), moved: from, base: flow.dataset.base || "" };
  window.htmx.ajax("POST", flow.dataset.reorderUrl, { source: flow, target: "#editor", swap: "outerHTML", values });
});
