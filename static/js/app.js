// Deskbook's few lines of client code. No inline scripts anywhere (CSP), no eval.
(function () {
  "use strict";

  // CSS folds the phone menu only where this script runs to unfold it.
  document.documentElement.classList.add("js");

  function showToast(message, level, undoUrl) {
    var area = document.getElementById("toasts");
    var template = document.getElementById("toast-template");
    if (!area || !template) return;
    // A new message supersedes an earlier error: a red toast must not linger beside
    // the green one that says the retry worked.
    area.querySelectorAll(".toast-error").forEach(function (old) { old.remove(); });
    var toast = template.content.firstElementChild.cloneNode(true);
    toast.textContent = message;
    toast.classList.add("toast-" + (level || "success"));
    if (undoUrl) toast.appendChild(undoButton(undoUrl));
    area.appendChild(toast);
    if (undoUrl && window.htmx) window.htmx.process(toast);
    dismissLater(toast, undoUrl ? 20000 : 6000);
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

  function dismissLater(toast, delay) {
    window.setTimeout(function () { toast.remove(); }, delay || 6000);
  }

  // Toasts requested by the server through the HX-Trigger response header.
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    showToast(detail.message || "", detail.level, detail.undo);
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(function (toast) { dismissLater(toast); });
    // Filters fold away on a phone so that the first screen shows results.
    if (window.matchMedia("(max-width: 767px)").matches) {
      document.querySelectorAll("details[data-fold-small]").forEach(function (fold) { fold.open = false; });
    }
  });

  // htmx swaps that bring a fold (the tag filters above a list) keep it as the user
  // left it; a new one folds on a phone like those of the first page.
  var foldsOpen = {};
  document.addEventListener("htmx:beforeSwap", function () {
    foldsOpen = {};
    document.querySelectorAll("details[data-fold-small][id]").forEach(function (fold) {
      foldsOpen[fold.id] = fold.open;
    });
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var small = window.matchMedia("(max-width: 767px)").matches;
    event.detail.target.querySelectorAll("details[data-fold-small][id]").forEach(function (fold) {
      if (fold.id in foldsOpen) fold.open = foldsOpen[fold.id];
      else if (small) fold.open = false;
    });
  });

  // The phone menu's button, and any "Print" button.
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest(".nav-toggle");
    if (toggle) {
      var links = document.getElementById(toggle.getAttribute("aria-controls"));
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (links) links.classList.toggle("is-open", open);
      return;
    }
    if (event.target.closest && event.target.closest("[data-print]")) {
      event.preventDefault();
      window.print();
    }
  });

  // No request for each pinyin keystroke of an input method: input events during a
  // composition never reach htmx; the fields that search as you type also trigger on
  // compositionend, which fires once the word is chosen. (htmx's own way, a trigger
  // filter such as input[!event.isComposing], needs eval, which the CSP forbids.)
  document.addEventListener("input", function (event) {
    if (event.isComposing) event.stopPropagation();
  }, true);

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

// The search boxes (templates/search/_box.html: the header's, and the front desk's
// lookup): each a combobox ([data-search-box]) whose dropdown is the listbox named
// by its aria-controls, a list of links that htmx fills while typing. "/" focuses
// the page's primary box (else the header's). ArrowDown / ArrowUp choose a link,
// Enter opens it (the first one when none is chosen; if the answer for what is
// typed is still on its way, the first one once it comes), Esc empties the box and
// shuts the dropdown, a click elsewhere shuts it.
(function () {
  "use strict";

  var pendingOpen = null;  // the box whose Enter waits for its answer

  function isBox(element) { return !!(element && element.hasAttribute && element.hasAttribute("data-search-box")); }
  function list(box) { return document.getElementById(box.getAttribute("aria-controls")); }
  function boxOf(dropdown) { return document.querySelector("[data-search-box][aria-controls='" + dropdown.id + "']"); }

  function options(box) {
    var dropdown = list(box);
    return dropdown ? Array.prototype.slice.call(dropdown.querySelectorAll("[role=option]")) : [];
  }

  function activeOption(box) {
    var dropdown = list(box);
    return dropdown && dropdown.querySelector("[role=option][aria-selected=true]");
  }

  function choose(box, option) {
    options(box).forEach(function (item) {
      item.setAttribute("aria-selected", item === option ? "true" : "false");
      item.classList.toggle("is-active", item === option);
    });
    if (option) {
      box.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      box.removeAttribute("aria-activedescendant");
    }
  }

  function setOpen(box, open) {
    var dropdown = list(box);
    if (!dropdown) return;
    dropdown.hidden = !open;
    box.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) box.removeAttribute("aria-activedescendant");
  }

  function hasResults(box) {
    var dropdown = list(box);
    return !!(dropdown && dropdown.firstElementChild);
  }

  // The results on show are for what is in the box (not for an earlier prefix
  // whose answer is still being replaced).
  function resultsAreCurrent(box) {
    var shown = list(box).querySelector("[data-query]");
    return !!shown && shown.getAttribute("data-query") === box.value.trim();
  }

  function move(box, step) {
    var items = options(box);
    if (!items.length) return;
    if (list(box).hidden) setOpen(box, true);
    var index = items.indexOf(activeOption(box)) + step;
    if (index < 0) index = items.length - 1;
    if (index >= items.length) index = 0;
    choose(box, items[index]);
  }

  function clear(box) {
    list(box).replaceChildren();
    setOpen(box, false);
    if (box.value === "") return;
    box.value = "";
    // htmx remembers the last value for its "changed" check: tell it the box is empty,
    // so typing the same text again searches again.
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function openFirst(box) {
    var option = options(box)[0];
    if (option) window.location.assign(option.href);
  }

  function open(box, event) {
    var option = activeOption(box);
    if (!option && !(hasResults(box) && resultsAreCurrent(box))) {
      // Typed, then Enter at once: the answer is on its way; open its first result
      // when it comes. An empty box: the form opens the results page.
      if (box.value.trim()) {
        event.preventDefault();
        pendingOpen = box;
      }
      return;
    }
    event.preventDefault();
    if (option) window.location.assign(option.href);
    else openFirst(box);
  }

  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey) {
      var typing = box && (box.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(box.tagName));
      var wanted = document.querySelector("[data-search-box][data-search-primary]") ||
        document.querySelector("[data-search-box]");
      // In an empty search box (the lookup starts in one) "/" is the same key: no slash.
      if (isBox(box) && box.value === "") { event.preventDefault(); return; }
      if (typing || !wanted) return;
      event.preventDefault();
      wanted.focus();
      wanted.select();
      return;
    }
    if (!isBox(box) || event.isComposing) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      move(box, event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter") {
      open(box, event);
    } else if (event.key === "Escape") {
      event.preventDefault();
      pendingOpen = null;
      clear(box);
    } else {
      pendingOpen = null;
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var box = boxOf(event.detail.target);
    if (!box) return;
    choose(box, null);
    setOpen(box, hasResults(box) && document.activeElement === box);
    if (pendingOpen !== box) return;
    if (resultsAreCurrent(box)) {
      pendingOpen = null;
      openFirst(box);
    } else if (!hasResults(box)) {  // nothing to search for in it: the results page says so
      pendingOpen = null;
      box.form.requestSubmit();
    }
  });

  document.addEventListener("focusin", function (event) {
    if (isBox(event.target) && hasResults(event.target)) setOpen(event.target, true);
  });

  document.addEventListener("click", function (event) {
    document.querySelectorAll("[data-search-box]").forEach(function (box) {
      var dropdown = list(box);
      if (!dropdown || dropdown.hidden) return;
      if (event.target === box || dropdown.contains(event.target)) return;
      setOpen(box, false);
    });
  });
})();
