// Deskbook's few lines of client code. No inline scripts anywhere (CSP), no eval.
(function () {
  "use strict";

  function showToast(message, level, undoUrl) {
    var area = document.getElementById("toasts");
    var template = document.getElementById("toast-template");
    if (!area || !template) return;
    var toast = template.content.firstElementChild.cloneNode(true);
    toast.textContent = message;
    toast.classList.add("toast-" + (level || "success"));
    if (undoUrl) toast.appendChild(undoButton(undoUrl));
    area.appendChild(toast);
    if (undoUrl && window.htmx) window.htmx.process(toast);
    dismissLater(toast);
  }

  // An Undo button that htmx posts (with the CSRF header inherited from <body>).
  function undoButton(url) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "toast-undo";
    button.textContent = document.body.dataset.undoLabel || "Undo";
    button.setAttribute("hx-post", url);
    button.setAttribute("hx-swap", "none");
    return button;
  }

  function dismissLater(toast) {
    window.setTimeout(function () { toast.remove(); }, 6000);
  }

  // Toasts requested by the server through the HX-Trigger response header.
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    showToast(detail.message || "", detail.level, detail.undo);
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

// Notes: Ctrl+Enter (Cmd+Enter on a Mac) in a field of a form marked data-ctrl-enter
// submits it, through htmx like a click on its submit button.
(function () {
  "use strict";

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) return;
    var field = event.target;
    if (!field || !/^(INPUT|TEXTAREA|SELECT)$/.test(field.tagName)) return;
    var form = field.form;
    if (!form || !form.hasAttribute("data-ctrl-enter")) return;
    event.preventDefault();
    form.requestSubmit();
  });
})();
