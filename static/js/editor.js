/*
 * Stepwise: the workflow editor's behaviour (templates/workflows/editor.html).
 *
 * The page works without this file (every form has a Save button and every
 * card is a link). With it:
 *
 *   [data-autosave-field]    saves itself (htmx: hx-trigger "input changed delay:500ms,
 *                            change", only this field, its base revision rev-NAME
 *                            and the step's key). Here: "Unsaved changes…" and
 *                            "Saving…", a field being typed in or being saved is
 *                            marked data-dirty so that others' changes arriving by
 *                            the sync poll never replace it, and what is still
 *                            dirty is sent by sendBeacon when the page is left.
 *   pageshow from the back/forward cache: reload, so a stale form never autosaves.
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

  var RETRY_MS = 3000;
  var lastTemplateField = null;

  function saveState(text, kind) {
    var state = document.getElementById("save-state");
    if (!state) return;
    state.textContent = text;
    state.classList.toggle("is-pending", kind === "pending");
    state.classList.toggle("is-error", kind === "error");
  }

  /* Autosave: the requests are htmx's; this only keeps track of dirty fields ---- */

  function autosaveField(element) {
    return element && element.matches && element.matches("[data-autosave-field]") ? element : null;
  }

  function onEdit(event) {
    var field = autosaveField(event.target);
    if (!field) return;
    field.setAttribute("data-dirty", "typed");
    saveState("Unsaved changes…", "pending");
  }
  // "input" comes before htmx's "change" request for selects and checkboxes too.
  document.addEventListener("input", onEdit);

  document.addEventListener("htmx:beforeRequest", function (event) {
    var field = autosaveField(event.detail && event.detail.elt);
    if (!field) return;
    // Its value is in this request now; it stays dirty until the answer arrives.
    field.setAttribute("data-dirty", "sending");
    field.setAttribute("data-sending", field.value);
    saveState("Saving…", "pending");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var field = autosaveField(event.detail && event.detail.elt);
    if (!field) return;
    if (event.detail.successful) field.setAttribute("data-saved", field.getAttribute("data-sending"));
    if (event.detail.successful || (event.detail.xhr && event.detail.xhr.status === 409)) {
      // Typed again meanwhile: still dirty, its own request is on its way.
      if (field.getAttribute("data-dirty") === "sending") field.removeAttribute("data-dirty");
      return;
    }
    if (event.detail.xhr && event.detail.xhr.status === 422) {
      field.removeAttribute("data-dirty");
      return;
    }
    field.setAttribute("data-dirty", "typed");
    saveState("Not saved yet, retrying…", "error");
    window.setTimeout(function () {
      if (field.isConnected && field.getAttribute("data-dirty") === "typed") window.htmx.trigger(field, "change");
    }, RETRY_MS);
  });

  // Leaving a field fires "change" after "input" already saved its value: the
  // same value sent again on an older base would be refused as a conflict with
  // whatever someone else wrote meanwhile.
  document.addEventListener("htmx:confirm", function (event) {
    var field = autosaveField(event.detail && event.detail.elt);
    if (field && !field.hasAttribute("data-dirty") && field.value === field.getAttribute("data-saved")) {
      event.preventDefault();
    }
  });

  // Others' changes (the sync poll's out-of-band pieces) never replace a field
  // the person is typing in or saving; its old base then makes the next save
  // of it a conflict, shown with "Use theirs" / "Keep mine".
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || !target.querySelector) return;
    if (target.matches("[data-dirty]") || target.querySelector("[data-dirty]")) event.detail.shouldSwap = false;
    // A conflict notice being answered ("Use theirs" / "Keep mine" just clicked) is not
    // replaced by the same notice again (the field's own save on blur, refused once more):
    // the click's request, queued behind that save, would be dropped with the old button.
    var active = document.activeElement;
    var incoming = event.detail.fragment;
    if (active && active.closest && active.closest(".conflict") && target.contains(active) &&
        incoming && incoming.querySelector && incoming.querySelector(".conflict")) {
      event.detail.shouldSwap = false;
    }
  });

  // Leaving the page with a field typed in but not sent: send it anyway.
  window.addEventListener("pagehide", function () {
    if (!navigator.sendBeacon) return;
    document.querySelectorAll('[data-autosave-field][data-dirty="typed"]').forEach(function (field) {
      var form = field.form;
      if (!form) return;
      var data = new FormData();
      data.append(field.name, field.value);
      ["rev-" + field.name, "step_key", "csrfmiddlewaretoken"].forEach(function (name) {
        var input = form.elements.namedItem(name);
        if (input && input.value !== undefined) data.append(name, input.value);
      });
      navigator.sendBeacon(field.getAttribute("hx-post"), data);
    });
  });

  // Back/Forward from the browser's page cache would show the form as it was
  // (the server answers no-store, but a browser may keep the page anyway).
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && document.getElementById("editor")) window.location.reload();
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
      // A slot replaced by an out-of-band swap is detached: its successor (same id) decides.
      if (!slot.isConnected) slot = slot.id ? document.getElementById(slot.id) : null;
      if (!slot) return;
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
      // The revision the flow was drawn at: a reorder of a list someone else changed since is refused.
      values: { order: order.join(","), moved: String(from), base: flow.getAttribute("data-base") || "" }
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
