/*
 * Stepwise: the workflow editor's behaviour (templates/workflows/editor.html).
 *
 * The page works without this file (every form has a Save button and every
 * card is a link). With it:
 *
 *   form[data-autosave]      saves itself 500 ms after the last change (htmx
 *                            event "autosave"); a pending save is sent before
 *                            any other editor request, and by sendBeacon when
 *                            the page is left, so an edit is never lost.
 *   [data-insert="name"]     the variable picker: inserts {{ name }} at the
 *                            cursor of the last focused [data-template-field].
 *   [data-fix-bad][data-fix-good]  "Use ticket": rewrites {{ tiket… }} in the
 *                            field whose problems the button's slot lists.
 *   [data-range-output="id"] shows a range input's value in <output id>.
 *   li.flow-step[draggable]  drag and drop reorders the steps (POST to the
 *                            flow's data-reorder-url); Move up / Move down
 *                            buttons do the same from the keyboard.
 *   #editor[data-focus]      after an edit, focus goes where the server says.
 *   #panel                   a newly opened panel gets focus (and is scrolled
 *                            into view at phone width).
 *   input[data-escape-reset="saved"]  Escape puts back the saved value (the title).
 *   .field-issues            a field whose slot lists problems gets aria-invalid.
 */
(function () {
  "use strict";

  var DEBOUNCE_MS = 500;
  var RETRY_MS = 3000;
  var pending = null; // {form, timer}
  var lastTemplateField = null;

  function saveState(text, kind) {
    var state = document.getElementById("save-state");
    if (!state) return;
    state.textContent = text;
    state.classList.toggle("is-pending", kind === "pending");
    state.classList.toggle("is-error", kind === "error");
  }

  /* Autosave -------------------------------------------------------------- */

  function schedule(form) {
    if (pending && pending.form !== form) flush();
    if (pending) window.clearTimeout(pending.timer);
    pending = {
      form: form,
      timer: window.setTimeout(flush, DEBOUNCE_MS)
    };
    saveState("Unsaved changes…", "pending");
  }

  function flush() {
    if (!pending) return;
    var form = pending.form;
    window.clearTimeout(pending.timer);
    pending = null;
    if (!window.htmx) return;
    if (!form.isConnected) {
      // The form was redrawn by another edit while this one waited: its
      // fields (and the step they belonged to) are gone, so say so.
      saveState("Not saved: the editor redrew as you typed. Type it again.", "error");
      return;
    }
    window.htmx.trigger(form, "autosave");
  }

  function ignoredForAutosave(element) {
    // Controls with their own request (format switch, radio refresh) and the
    // sample box (used only by "Generate schema") do not autosave.
    return !element.name || element.hasAttribute("hx-post") || element.name === "sample";
  }

  function onEdit(event) {
    var element = event.target;
    var form = element.closest && element.closest("form[data-autosave]");
    if (!form || ignoredForAutosave(element)) return;
    schedule(form);
  }

  document.addEventListener("input", onEdit);
  document.addEventListener("change", onEdit);

  // Any other editor request waits for the pending save (the editor's
  // hx-sync queue then keeps them in order on the server).
  document.addEventListener("htmx:confirm", function (event) {
    if (!pending) return;
    var element = event.detail && event.detail.elt;
    if (element === pending.form) return;
    if (element && element.closest && element.closest("#editor")) flush();
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var element = event.detail && event.detail.elt;
    if (element && element.matches && element.matches("form[data-autosave]")) saveState("Saving…", "pending");
  });

  function failed(event) {
    var element = event.detail && event.detail.elt;
    if (!element || !element.matches || !element.matches("form[data-autosave]")) return;
    saveState("Not saved yet, retrying…", "error");
    window.setTimeout(function () {
      if (element.isConnected && !pending) schedule(element);
    }, RETRY_MS);
  }
  document.addEventListener("htmx:sendError", failed);
  document.addEventListener("htmx:responseError", failed);

  // Leaving the page with a save pending: send it anyway.
  window.addEventListener("pagehide", function () {
    if (!pending) return;
    var form = pending.form;
    window.clearTimeout(pending.timer);
    pending = null;
    if (navigator.sendBeacon && form.isConnected) navigator.sendBeacon(form.action, new FormData(form));
  });

  /* Variable picker and fixes ----------------------------------------------- */

  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("[data-template-field]")) lastTemplateField = event.target;
  });

  function templateTarget(button) {
    if (lastTemplateField && lastTemplateField.isConnected) {
      var panel = button.closest("#panel");
      if (!panel || panel.contains(lastTemplateField)) return lastTemplateField;
    }
    var scope = button.closest("form") || document;
    // The field right after the picker (the prompt), else the first one.
    var picker = button.closest("[data-picker]");
    var next = picker && picker.parentElement.querySelector("[data-template-field]");
    return next || scope.querySelector("[data-template-field]");
  }

  function insertAtCursor(field, text) {
    var start = typeof field.selectionStart === "number" ? field.selectionStart : field.value.length;
    var end = typeof field.selectionEnd === "number" ? field.selectionEnd : start;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    var caret = start + text.length;
    field.focus();
    field.setSelectionRange(caret, caret);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-insert]");
    if (!button) return;
    event.preventDefault();
    var field = templateTarget(button);
    if (field) insertAtCursor(field, "{{ " + button.getAttribute("data-insert") + " }}");
  });

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-fix-bad]");
    if (!button) return;
    event.preventDefault();
    var slot = button.getAttribute("data-fix-slot");
    var field = document.querySelector('[aria-describedby~="' + slot + '"]');
    if (!field) return;
    var bad = button.getAttribute("data-fix-bad");
    var good = button.getAttribute("data-fix-good");
    var pattern = new RegExp("(\\{\\{\\s*)" + escapeRegExp(bad) + "(?=[\\s.|}])", "g");
    field.value = field.value.replace(pattern, "$1" + good);
    field.focus();
    field.dispatchEvent(new Event("input", { bubbles: true }));
  });

  /* Rename in place ---------------------------------------------------------- */

  // Escape in the title field puts the saved name back (the attribute's value) and leaves it.
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (event.key !== "Escape" || !field.matches || !field.matches("input[data-escape-reset]")) return;
    field.value = field.getAttribute("data-escape-reset");
    field.blur();
  });

  /* Range values -------------------------------------------------------------- */

  document.addEventListener("input", function (event) {
    var id = event.target.getAttribute && event.target.getAttribute("data-range-output");
    var output = id && document.getElementById(id);
    if (output) output.textContent = event.target.value;
  });

  /* After swaps: invalid fields, the active card, focus ----------------------------- */

  function markInvalid(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var slots = Array.prototype.slice.call(scope.querySelectorAll(".field-issues"));
    if (scope.matches && scope.matches(".field-issues")) slots.push(scope);
    slots.forEach(function (slot) {
      if (!slot.isConnected) return; // replaced by the swap: its successor decides
      var controls = document.querySelectorAll('[aria-describedby~="' + slot.id + '"]');
      var invalid = slot.querySelector("li") !== null;
      controls.forEach(function (control) {
        if (invalid) control.setAttribute("aria-invalid", "true");
        else control.removeAttribute("aria-invalid");
      });
    });
  }

  function markActiveCard() {
    var panel = document.getElementById("panel");
    if (!panel) return;
    var kind = panel.getAttribute("data-panel");
    var name = kind === "step" ? "step-" + panel.getAttribute("data-panel-index") : kind;
    document.querySelectorAll("[data-panel-card]").forEach(function (card) {
      card.classList.toggle("is-active", card.getAttribute("data-panel-card") === name);
    });
  }

  function isNarrow() {
    return window.matchMedia("(max-width: 900px)").matches;
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    markInvalid(target);
    if (!target) return;
    if (target.id === "panel") {
      // `target` is the panel that was replaced (outerHTML): act on the new one.
      var panel = document.getElementById("panel");
      markActiveCard();
      if (panel) {
        // On a phone the panel is below the steps: bring it into view. Everywhere,
        // focus goes into it, so the keyboard and screen readers follow.
        if (isNarrow()) panel.scrollIntoView({ block: "start" });
        panel.focus({ preventScroll: true });
      }
    }
    // After an edit that redrew the editor, focus goes where the server says (once).
    var editor = document.getElementById("editor");
    var selector = editor && editor.getAttribute("data-focus");
    if (selector) {
      editor.removeAttribute("data-focus");
      var element = document.querySelector(selector);
      if (element) element.focus();
    }
  });

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.classList && target.classList.contains("field-issues")) markInvalid(target);
  });

  /* Drag and drop ------------------------------------------------------------------- */

  var dragged = null;

  function stepItem(element) {
    return element && element.closest ? element.closest("li.flow-step[data-index]") : null;
  }

  function clearDropMarks() {
    document.querySelectorAll(".is-drop-before, .is-drop-after, .is-dragging").forEach(function (item) {
      item.classList.remove("is-drop-before", "is-drop-after", "is-dragging");
    });
  }

  document.addEventListener("dragstart", function (event) {
    var item = stepItem(event.target);
    if (!item || !item.hasAttribute("draggable")) return;
    // Dragging text out of a field is not a reorder.
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    dragged = item;
    item.classList.add("is-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.getAttribute("data-index"));
  });

  document.addEventListener("dragover", function (event) {
    var item = stepItem(event.target);
    if (!dragged || !item || item === dragged) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    var box = item.getBoundingClientRect();
    var before = event.clientY < box.top + box.height / 2;
    item.classList.toggle("is-drop-before", before);
    item.classList.toggle("is-drop-after", !before);
  });

  document.addEventListener("dragleave", function (event) {
    var item = stepItem(event.target);
    if (item && !item.contains(event.relatedTarget)) item.classList.remove("is-drop-before", "is-drop-after");
  });

  document.addEventListener("dragend", function () {
    dragged = null;
    clearDropMarks();
  });

  document.addEventListener("drop", function (event) {
    var item = stepItem(event.target);
    if (!dragged || !item || item === dragged) return;
    event.preventDefault();
    var flow = item.closest("#flow");
    var from = Number(dragged.getAttribute("data-index"));
    var to = Number(item.getAttribute("data-index"));
    var before = item.classList.contains("is-drop-before");
    clearDropMarks();
    dragged = null;
    var items = Array.prototype.map.call(flow.querySelectorAll("li.flow-step[data-index]"), function (li) {
      return Number(li.getAttribute("data-index"));
    });
    var order = items.filter(function (index) { return index !== from; });
    var at = order.indexOf(to) + (before ? 0 : 1);
    order.splice(at, 0, from);
    if (order.join(",") === items.join(",")) return;
    window.htmx.ajax("POST", flow.getAttribute("data-reorder-url"), {
      source: flow,
      target: "#editor",
      swap: "outerHTML",
      values: { order: order.join(","), moved: String(from) }
    });
  });

  /* Start ------------------------------------------------------------------------------ */

  function start() {
    // htmx "settles" class and style: it copies them from an element being
    // replaced to its replacement with the same id. A style the browser put
    // there (a resized textarea) would then be set as an attribute, which the
    // CSP refuses. Settle classes only.
    if (window.htmx) window.htmx.config.attributesToSettle = ["class", "width", "height"];
    markInvalid(document);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
