/*
 * Stepwise: the workflow editor (templates/workflows/editor.html) beyond htmx. Autosave is
 * htmx (hx-trigger "input changed delay:500ms, change", one request at a time by hx-sync);
 * here is what it cannot know: which fields hold edits not yet saved, where the cursor is.
 */
(function () {
  "use strict";

  function saveState(text, kind) {
    var state = document.getElementById("save-state");
    if (!state) return;
    state.textContent = text;
    state.classList.toggle("is-pending", kind === "pending");
    state.classList.toggle("is-error", kind === "error");
  }
  function autosaveField(element) {
    return element && element.matches && element.matches("[data-autosave-field]") ? element : null;
  }

  // htmx tracks requests, not edits: a field is data-dirty from typing until its save is
  // answered, so that others' changes never replace it (below) and a page left sends it.
  document.addEventListener("input", function (event) {
    if (!autosaveField(event.target)) return;
    event.target.setAttribute("data-dirty", "typed");
    saveState("Unsaved changes…", "pending");
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var field = autosaveField(event.detail.elt);
    if (!field) return;
    field.setAttribute("data-dirty", "sending");
    field.setAttribute("data-sending", field.value);
    saveState("Saving…", "pending");
  });

  // htmx does not retry: a save that failed (not refused: 409, 422) is sent again after 3 s.
  document.addEventListener("htmx:afterRequest", function (event) {
    var field = autosaveField(event.detail.elt);
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (!field) return;
    if (event.detail.successful) field.setAttribute("data-saved", field.getAttribute("data-sending"));
    if (event.detail.successful || status === 409 || status === 422) {
      // Typed again meanwhile: still dirty, its own request is on its way.
      if (field.getAttribute("data-dirty") === "sending" || status === 422) field.removeAttribute("data-dirty");
      return;
    }
    field.setAttribute("data-dirty", "typed");
    saveState("Not saved yet, retrying…", "error");
    window.setTimeout(function () {
      if (field.isConnected && field.getAttribute("data-dirty") === "typed") window.htmx.trigger(field, "change");
    }, 3000);
  });

  // Leaving a field fires "change" after "input" saved its value ("changed" is per trigger):
  // the same value sent again on an older base would be refused as a conflict.
  document.addEventListener("htmx:confirm", function (event) {
    var field = autosaveField(event.detail.elt);
    if (field && !field.hasAttribute("data-dirty") && field.value === field.getAttribute("data-saved")) event.preventDefault();
  });

  // hx-swap-oob has no condition: the sync poll's pieces skip a field being typed in or saved
  // (its old base then makes its next save a conflict), and a conflict notice being answered.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var incoming = event.detail.fragment;
    var active = document.activeElement;
    if (!target || !target.querySelector) return;
    if (target.matches("[data-dirty]") || target.querySelector("[data-dirty]")) event.detail.shouldSwap = false;
    if (active && active.closest(".conflict") && target.contains(active) &&
        incoming && incoming.querySelector && incoming.querySelector(".conflict")) event.detail.shouldSwap = false;
  });

  // htmx cannot send while the page unloads; sendBeacon can: a field typed in but not sent.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll('[data-autosave-field][data-dirty="typed"]').forEach(function (field) {
      var data = new FormData();
      data.append(field.name, field.value);
      ["rev-" + field.name, "step_key", "csrfmiddlewaretoken"].forEach(function (name) {
        var input = field.form && field.form.elements.namedItem(name);
        if (input && input.value !== undefined) data.append(name, input.value);
      });
      if (navigator.sendBeacon) navigator.sendBeacon(field.getAttribute("hx-post"), data);
    });
  });

  function typeInto(field, value, caret) {
    field.value = value;
    field.focus();
    if (caret !== undefined) field.setSelectionRange(caret, caret);
    field.dispatchEvent(new Event("input", { bubbles: true })); // autosaves as if typed
  }

  // Text editing, not a request: [data-insert] puts {{ name }} at the cursor of the last focused
  // template field of this panel (else of the field after the picker).
  var lastTemplateField = null;
  document.addEventListener("focusin", function (event) {
    if (event.target.matches("[data-template-field]")) lastTemplateField = event.target;
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-insert]");
    if (!button) return;
    event.preventDefault();
    var panel = button.closest("#panel");
    var field = lastTemplateField && lastTemplateField.isConnected && (!panel || panel.contains(lastTemplateField))
      ? lastTemplateField
      : button.closest("[data-picker]").parentElement.querySelector("[data-template-field]");
    if (!field) return;
    var text = "{{ " + button.getAttribute("data-insert") + " }}";
    var start = field.selectionStart === null ? field.value.length : field.selectionStart;
    var end = field.selectionEnd === null ? start : field.selectionEnd;
    typeInto(field, field.value.slice(0, start) + text + field.value.slice(end), start + text.length);
  });

  // Text editing too: "Use ticket" ([data-fix-bad][data-fix-good]) rewrites {{ tiket… }} in
  // the field the button's slot describes, keeping whatever else was typed there.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-fix-bad]");
    var field = button && document.querySelector('[aria-describedby~="' + button.getAttribute("data-fix-slot") + '"]');
    if (!field) return;
    event.preventDefault();
    var bad = button.getAttribute("data-fix-bad").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    var pattern = new RegExp("(\\{\\{\\s*)" + bad + "(?=[\\s.|}])", "g");
    typeInto(field, field.value.replace(pattern, "$1" + button.getAttribute("data-fix-good")));
  });

  // Keys and values on the page alone: Escape in the title (input[data-escape-reset]) puts the
  // saved name back; a range input shows its value in <output id> ([data-range-output]).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.matches("input[data-escape-reset]")) return;
    event.target.value = event.target.getAttribute("data-escape-reset");
    event.target.blur();
  });
  document.addEventListener("input", function (event) {
    var output = document.getElementById(event.target.getAttribute("data-range-output") || "-");
    if (output) output.textContent = event.target.value;
  });

  // A problems slot arrives out of band while its field stays as typed: the field gets
  // aria-invalid while the slot (or its successor, by id) lists something.
  function markInvalid(root) {
    var slots = Array.prototype.slice.call(root.querySelectorAll ? root.querySelectorAll(".field-issues") : []);
    if (root.matches && root.matches(".field-issues")) slots.push(root);
    slots.forEach(function (slot) {
      var current = document.getElementById(slot.id);
      var invalid = current && current.querySelector("li") !== null;
      document.querySelectorAll('[aria-describedby~="' + slot.id + '"]').forEach(function (control) {
        if (invalid) control.setAttribute("aria-invalid", "true");
        else if (current) control.removeAttribute("aria-invalid");
      });
    });
  }
  document.addEventListener("htmx:load", function (event) { markInvalid(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function (event) { markInvalid(event.detail.target); });

  // A swap does not move focus: a newly opened panel gets it (scrolled to on a phone, where it
  // is below the steps) and its card is marked; after an edit that redrew the editor, focus
  // goes where the server says (#editor[data-focus]).
  document.addEventListener("htmx:afterSettle", function (event) {
    var panel = document.getElementById("panel");
    var editor = document.getElementById("editor");
    if (panel && event.detail.target && event.detail.target.id === "panel") {
      var name = panel.getAttribute("data-panel") === "step" ? "step-" + panel.getAttribute("data-panel-index") : panel.getAttribute("data-panel");
      document.querySelectorAll("[data-panel-card]").forEach(function (card) {
        card.classList.toggle("is-active", card.getAttribute("data-panel-card") === name);
      });
      if (window.matchMedia("(max-width: 900px)").matches) panel.scrollIntoView({ block: "start" });
      panel.focus({ preventScroll: true });
    }
    var focus = editor && editor.getAttribute("data-focus") && document.querySelector(editor.getAttribute("data-focus"));
    if (editor) editor.removeAttribute("data-focus");
    if (focus) focus.focus();
  });

  // htmx has no drag events: li.flow-step[draggable] shows where it would drop, and the new
  // order is POSTed by htmx.ajax to #flow[data-reorder-url] (Move up / Move down do it by keyboard).
  var dragged = null;
  function dropMarks(item, before) {
    document.querySelectorAll(".is-drop-before, .is-drop-after").forEach(function (other) {
      if (other !== item) other.classList.remove("is-drop-before", "is-drop-after");
    });
    if (item) item.classList.toggle("is-drop-before", before);
    if (item) item.classList.toggle("is-drop-after", !before);
  }
  function stepAt(event) {
    var item = event.target.closest ? event.target.closest("li.flow-step[data-index]") : null;
    return dragged && item && item !== dragged ? item : null;
  }
  document.addEventListener("dragstart", function (event) {
    var item = event.target.closest && event.target.closest("li.flow-step[draggable]");
    if (!item || event.target.closest("input, textarea, select")) return; // dragging text
    dragged = item;
    item.classList.add("is-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.getAttribute("data-index"));
  });
  document.addEventListener("dragover", function (event) {
    var item = stepAt(event);
    if (!item) return;
    event.preventDefault();
    var box = item.getBoundingClientRect();
    dropMarks(item, event.clientY < box.top + box.height / 2);
  });
  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("is-dragging");
    dragged = null;
    dropMarks(null);
  });
  document.addEventListener("drop", function (event) {
    var item = stepAt(event);
    if (!item) return;
    event.preventDefault();
    var flow = item.closest("#flow");
    var from = Number(dragged.getAttribute("data-index"));
    var items = Array.prototype.map.call(flow.querySelectorAll("li.flow-step[data-index]"), function (li) {
      return Number(li.getAttribute("data-index"));
    });
    var order = items.filter(function (index) { return index !== from; });
    order.splice(order.indexOf(Number(item.getAttribute("data-index"))) + (item.classList.contains("is-drop-before") ? 0 : 1), 0, from);
    if (order.join(",") === items.join(",")) return;
    window.htmx.ajax("POST", flow.getAttribute("data-reorder-url"), {
      source: flow, target: "#editor", swap: "outerHTML",
      // The revision the flow was drawn at: a reorder of a list someone else changed since is refused.
      values: { order: order.join(","), moved: String(from), base: flow.getAttribute("data-base") || "" }
    });
  });
})();
