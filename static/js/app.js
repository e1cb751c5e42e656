// Deskbook's few lines of client code. No inline scripts anywhere (CSP), no eval.
(function () {
  "use strict";

  function showToast(message, level) {
    var area = document.getElementById("toasts");
    var template = document.getElementById("toast-template");
    if (!area || !template) return;
    var toast = template.content.firstElementChild.cloneNode(true);
    toast.textContent = message;
    toast.classList.add("toast-" + (level || "success"));
    area.appendChild(toast);
    dismissLater(toast);
  }

  function dismissLater(toast) {
    window.setTimeout(function () { toast.remove(); }, 6000);
  }

  // Toasts requested by the server through the HX-Trigger response header.
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    showToast(detail.message || "", detail.level);
  });

  // "/" focuses the global search box, unless the user is typing somewhere.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var typing = target && (target.isContentEditable ||
      /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    var box = document.getElementById("global-search");
    if (typing || !box) return;
    event.preventDefault();
    box.focus();
    box.select();
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(dismissLater);
  });

  // Error responses are swapped into #alerts (see htmx-config); clear them on the next success.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) {
      var alerts = document.getElementById("alerts");
      if (alerts && event.detail.target !== alerts) alerts.replaceChildren();
    }
  });
})();
