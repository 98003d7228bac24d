/*
 * Stepwise: the small amount of behaviour the pages need. No framework.
 *
 * Every page works without this file; it only makes things nicer. The
 * Content-Security-Policy forbids inline scripts and inline event handlers,
 * so behaviour is attached here, by data attributes:
 *
 *   <details class="dropdown">          closes on an outside click or Escape,
 *                                       and when another dropdown opens; arrow
 *                                       keys open it and move between its
 *                                       .menu-item entries (Home/End too).
 *   .alert[data-autodismiss]            fades away after a few seconds (success
 *                                       messages get the attribute); hovering or
 *                                       focusing it holds it. [data-dismiss]
 *                                       inside an .alert or .toast closes it.
 *   [data-copy="text"]                  copies the text; [data-copy-target="#id"]
 *                                       copies an element's value or text. The
 *                                       button's .copy-label (or its text) says
 *                                       "Copied" for a moment.
 *   form[data-confirm="…"], button[data-confirm="…"], a[data-confirm="…"]
 *                                       asks confirm() first (htmx elements can
 *                                       use hx-confirm instead).
 *   #progress                           a thin bar while htmx requests run
 *                                       (polling requests, hx-trigger "every …",
 *                                       and anything inside [data-no-progress]
 *                                       do not show it).
 *   [data-shown-once]                   a secret shown once: a page holding one
 *                                       is emptied when left and reloaded if the
 *                                       back/forward cache restores it, so Back
 *                                       asks the server (which shows it no more).
 *
 * Server to client, through htmx's HX-Trigger response header:
 *   trigger_client_event(response, "toast", {"level": "success", "message": "Saved"})
 *   shows a toast (levels: info, success, warning, error).
 * htmx requests that fail (4xx/5xx answers, network errors) show an error toast.
 */
(function () {
  "use strict";

  var AUTODISMISS_MS = 5000;
  var TOAST_MS = 6000;

  /* Dropdowns ------------------------------------------------------------- */

  function openDropdowns() {
    return document.querySelectorAll("details.dropdown[open]");
  }

  function closeDropdown(details, restoreFocus) {
    details.removeAttribute("open");
    if (restoreFocus) {
      var summary = details.querySelector("summary");
      if (summary) summary.focus();
    }
  }

  document.addEventListener("click", function (event) {
    openDropdowns().forEach(function (details) {
      if (!details.contains(event.target)) {
        closeDropdown(details, false);
      } else if (event.target.closest(".dropdown-menu a, .dropdown-menu button")) {
        // An htmx menu item does not leave the page: close the menu anyway.
        closeDropdown(details, false);
      }
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    openDropdowns().forEach(function (details) {
      closeDropdown(details, details.contains(document.activeElement));
    });
  });

  // Arrow keys: on a menu's button they open it on its first (or last) item;
  // inside an open menu, Up/Down/Home/End move between its items (wrapping).
  function menuItems(details) {
    var menu = details.querySelector(".dropdown-menu");
    if (!menu) return [];
    return Array.prototype.filter.call(menu.querySelectorAll(".menu-item"), function (item) {
      return !item.disabled && item.getClientRects().length > 0;
    });
  }

  document.addEventListener("keydown", function (event) {
    var keys = ["ArrowDown", "ArrowUp", "Home", "End"];
    if (keys.indexOf(event.key) < 0 || event.altKey || event.ctrlKey || event.metaKey) return;
    var element = event.target;
    var details = element.closest && element.closest("details.dropdown");
    if (!details) return;
    var onSummary = element.matches("summary") && element.parentElement === details;
    if (onSummary && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      details.setAttribute("open", "");
      var opened = menuItems(details);
      if (opened.length) opened[event.key === "ArrowDown" ? 0 : opened.length - 1].focus();
      return;
    }
    if (!details.open || !element.closest(".dropdown-menu")) return;
    var items = menuItems(details);
    if (!items.length) return;
    event.preventDefault();
    var at = items.indexOf(element.closest(".menu-item"));
    var next;
    if (event.key === "Home") next = 0;
    else if (event.key === "End") next = items.length - 1;
    else if (event.key === "ArrowDown") next = at < 0 ? 0 : (at + 1) % items.length;
    else next = at < 0 ? items.length - 1 : (at - 1 + items.length) % items.length;
    items[next].focus();
  });

  // "toggle" does not bubble; listen while it is captured on the way down.
  document.addEventListener(
    "toggle",
    function (event) {
      var opened = event.target;
      if (!(opened instanceof HTMLDetailsElement) || !opened.open) return;
      if (!opened.classList.contains("dropdown")) return;
      openDropdowns().forEach(function (details) {
        if (details !== opened && !details.contains(opened)) closeDropdown(details, false);
      });
    },
    true
  );

  /* Alerts and toasts ------------------------------------------------------ */

  function dismiss(element) {
    if (!element || element.classList.contains("is-leaving")) return;
    element.classList.add("is-leaving");
    // Reduced motion turns transitions off, so do not wait for transitionend.
    window.setTimeout(function () {
      element.remove();
    }, 260);
  }

  function dismissLater(element, delay) {
    window.setTimeout(function () {
      if (!element.isConnected) return;
      // Someone is reading or about to click: wait.
      if (element.matches(":hover, :focus-within")) {
        dismissLater(element, 1500);
        return;
      }
      dismiss(element);
    }, delay);
  }

  var scheduled = new WeakSet();

  function initAlerts(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var alerts = Array.prototype.slice.call(scope.querySelectorAll(".alert[data-autodismiss]"));
    if (scope.matches && scope.matches(".alert[data-autodismiss]")) alerts.push(scope);
    alerts.forEach(function (alert) {
      if (scheduled.has(alert)) return;
      scheduled.add(alert);
      dismissLater(alert, AUTODISMISS_MS);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss]");
    if (!button) return;
    dismiss(button.closest(".alert, .toast"));
  });

  function icon(name, className) {
    var paths = {
      info: '<circle cx="12" cy="12" r="10"/><path d="M12 16v-4"/><path d="M12 8h.01"/>',
      success: '<circle cx="12" cy="12" r="10"/><path d="m9 12 2 2 4-4"/>',
      warning:
        '<path d="m21.73 18-8-14a2 2 0 0 0-3.48 0l-8 14A2 2 0 0 0 4 21h16a2 2 0 0 0 1.73-3Z"/><path d="M12 9v4"/><path d="M12 17h.01"/>',
      error: '<circle cx="12" cy="12" r="10"/><path d="m15 9-6 6"/><path d="m9 9 6 6"/>',
      x: '<path d="M18 6 6 18"/><path d="m6 6 12 12"/>'
    };
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", className || "icon");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.innerHTML = paths[name] || paths.info; // constant markup, never user text
    return svg;
  }

  function toast(level, message) {
    var region = document.getElementById("toasts");
    if (!region || !message) return;
    level = ["info", "success", "warning", "error"].indexOf(level) >= 0 ? level : "info";

    var element = document.createElement("div");
    element.className = "toast toast-" + level;
    element.setAttribute("role", level === "error" ? "alert" : "status");

    var body = document.createElement("div");
    body.className = "toast-body";
    body.textContent = String(message);

    var close = document.createElement("button");
    close.type = "button";
    close.className = "alert-close";
    close.setAttribute("data-dismiss", "");
    close.setAttribute("aria-label", "Dismiss");
    close.appendChild(icon("x"));

    element.appendChild(icon(level, "icon alert-icon"));
    element.appendChild(body);
    element.appendChild(close);
    region.appendChild(element);

    if (level !== "error") dismissLater(element, TOAST_MS);
  }

  // Exposed for other scripts under static/ (e.g. the workflow editor).
  window.Stepwise = { toast: toast };

  // HX-Trigger: {"toast": {"level": "success", "message": "Saved"}}
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    toast(detail.level, detail.message || detail.value);
  });

  /* Copy to clipboard ------------------------------------------------------ */

  var liveStatus = null;

  function announce(text) {
    liveStatus = liveStatus || document.getElementById("sr-status");
    if (!liveStatus) return;
    liveStatus.textContent = "";
    window.setTimeout(function () {
      liveStatus.textContent = text;
    }, 50);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http servers on a LAN address are not a "secure context".
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "clipboard-helper";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (error) {
        ok = false;
      }
      area.remove();
      if (ok) resolve();
      else reject(new Error("copy failed"));
    });
  }

  function textToCopy(button) {
    var text = button.getAttribute("data-copy");
    if (text) return text;
    var selector = button.getAttribute("data-copy-target");
    var target = selector ? document.querySelector(selector) : null;
    if (!target) return "";
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return target.value;
    return target.textContent.trim();
  }

  function flashLabel(button, text, ok) {
    var label = button.querySelector(".copy-label") || (button.children.length === 0 ? button : null);
    if (label) {
      if (!label.hasAttribute("data-label")) label.setAttribute("data-label", label.textContent);
      // Keep the button as wide as it was while the label changes.
      button.style.minWidth = button.offsetWidth + "px";
      label.textContent = text;
    }
    button.classList.toggle("is-copied", ok);
    window.clearTimeout(button._copyTimer);
    button._copyTimer = window.setTimeout(function () {
      if (label) label.textContent = label.getAttribute("data-label");
      button.classList.remove("is-copied");
      button.style.minWidth = "";
    }, 1600);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-target]");
    if (!button) return;
    event.preventDefault();
    var text = textToCopy(button);
    if (!text) return;
    copyText(text).then(
      function () {
        flashLabel(button, "Copied", true);
        announce("Copied to the clipboard");
      },
      function () {
        flashLabel(button, "Copy failed", false);
        announce("Could not copy; select the text and copy it by hand");
      }
    );
  });

  /* Confirmations ---------------------------------------------------------- */

  // Captured before htmx's own listeners, so a "Cancel" stops htmx too.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var submitter = event.submitter;
      var message =
        (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true
  );

  document.addEventListener(
    "click",
    function (event) {
      var element = event.target.closest("a[data-confirm], button[data-confirm]");
      if (!element) return;
      // Submit buttons are asked about in the submit listener, once.
      if (element instanceof HTMLButtonElement && element.form && element.type === "submit") return;
      if (!window.confirm(element.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true
  );

  /* htmx: progress bar and failures ------------------------------------------ */

  var progress = null;
  var pending = new Set();
  var showTimer = null;

  function isBackground(element) {
    if (!element || !element.closest) return false;
    if (element.closest("[data-no-progress]")) return true;
    var trigger = element.getAttribute("hx-trigger") || element.getAttribute("data-hx-trigger") || "";
    return /(^|[\s,])every\s/.test(trigger);
  }

  function progressStart() {
    progress = progress || document.getElementById("progress");
    if (!progress || showTimer !== null || progress.classList.contains("is-active")) return;
    // Fast answers should not flash the bar.
    showTimer = window.setTimeout(function () {
      showTimer = null;
      progress.classList.remove("is-done");
      void progress.offsetWidth; // restart from the left
      progress.classList.add("is-active");
    }, 120);
  }

  function progressDone() {
    if (pending.size > 0 || !progress) return;
    if (showTimer !== null) {
      window.clearTimeout(showTimer);
      showTimer = null;
      return;
    }
    if (progress.classList.contains("is-active")) {
      progress.classList.remove("is-active");
      progress.classList.add("is-done");
    }
  }

  document.addEventListener("htmx:beforeSend", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!xhr || isBackground(event.detail.elt)) return;
    pending.add(xhr);
    // loadend fires after success, error, abort and timeout alike, even when
    // the element that sent the request has been swapped out of the page.
    xhr.addEventListener("loadend", function () {
      pending.delete(xhr);
      progressDone();
    });
    progressStart();
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    var message;
    if (status === 403) message = "You don't have permission to do that.";
    else if (status === 404) message = "That no longer exists. Reload the page.";
    else if (status === 409) message = "Someone else changed this first. Reload the page.";
    else if (status === 429) message = "Too many requests. Wait a moment and try again.";
    else if (status >= 500) message = "Something went wrong on the server (" + status + "). Try again.";
    else message = "The request failed (" + status + ").";
    toast("error", message);
  });

  document.addEventListener("htmx:sendError", function () {
    toast("error", "Could not reach the server. Check your connection and try again.");
  });

  document.addEventListener("htmx:timeout", function () {
    toast("error", "The server took too long to answer. Try again.");
  });

  /* Secrets shown once ----------------------------------------------------- */

  // The pages also answer Cache-Control: no-store; this covers browsers whose
  // back/forward cache keeps such pages anyway.
  window.addEventListener("pagehide", function () {
    if (!document.querySelector("[data-shown-once]")) return;
    document.documentElement.setAttribute("data-shown-once-left", "");
    document.body.replaceChildren();
  });

  window.addEventListener("pageshow", function (event) {
    if (event.persisted && document.documentElement.hasAttribute("data-shown-once-left")) {
      window.location.reload();
    }
  });

  /* Start ------------------------------------------------------------------ */

  initAlerts(document);
  // New content swapped in by htmx (e.g. out-of-band messages).
  document.addEventListener("htmx:load", function (event) {
    initAlerts(event.detail && event.detail.elt);
  });
})();
