// The tag chooser (templates/tags/_macros.html, tag_picker): a <details> holding a
// list of tag checkboxes, which works as it is without JavaScript. This adds a filter
// box on top (type to narrow the list; Enter ticks the first match and empties the
// box; Esc empties it, or folds the chooser when it is empty) and keeps the summary's
// chosen tags current. No inline scripts (CSP), no eval.
(function () {
  "use strict";

  function folded(text) { return (text || "").trim().toLowerCase(); }

  function visibleOptions(chooser) {
    return Array.prototype.filter.call(chooser.querySelectorAll(".tag-option"), function (option) {
      return !option.hidden;
    });
  }

  function narrow(chooser, text) {
    var wanted = folded(text);
    chooser.querySelectorAll(".tag-picker-group").forEach(function (group) {
      var label = group.querySelector(".tag-group-label");
      var groupMatches = wanted && label && folded(label.textContent).indexOf(wanted) !== -1;
      var shown = 0;
      group.querySelectorAll(".tag-option").forEach(function (option) {
        option.hidden = !(groupMatches || folded(option.textContent).indexOf(wanted) !== -1);
        if (!option.hidden) shown += 1;
      });
      group.hidden = shown === 0;
    });
  }

  function showChosen(chooser) {
    var chosen = chooser.querySelector("[data-tag-chooser-chosen]");
    if (!chosen) return;
    var badges = [];
    chooser.querySelectorAll(".tag-option input:checked").forEach(function (box) {
      var badge = box.parentNode.querySelector(".tag");
      if (badge) badges.push(badge.cloneNode(true));
    });
    if (!badges.length) {
      var none = document.createElement("small");
      none.textContent = chosen.dataset.none || "";
      badges.push(none);
    }
    chosen.replaceChildren.apply(chosen, badges);
  }

  function filterBox(chooser) {
    var input = document.createElement("input");
    input.type = "search";
    input.className = "tag-chooser-filter";
    input.autocomplete = "off";
    input.setAttribute("aria-label", chooser.dataset.filterLabel || "");
    input.placeholder = chooser.dataset.filterHint || "";
    input.addEventListener("input", function () { narrow(chooser, input.value); });
    input.addEventListener("keydown", function (event) {
      if (event.isComposing) return;
      if (event.key === "Enter" && !(event.ctrlKey || event.metaKey)) {
        event.preventDefault();  // never submits the note from here
        var first = visibleOptions(chooser)[0];
        if (!first || !input.value.trim()) return;
        var box = first.querySelector("input");
        box.checked = !box.checked;
        box.dispatchEvent(new Event("change", { bubbles: true }));
        input.value = "";
        narrow(chooser, "");
      } else if (event.key === "Escape") {
        event.preventDefault();
        if (input.value) {
          input.value = "";
          narrow(chooser, "");
        } else {
          chooser.open = false;
          chooser.querySelector("summary").focus();
        }
      }
    });
    return input;
  }

  function enhance(chooser) {
    if (chooser.dataset.enhanced) return;
    chooser.dataset.enhanced = "1";
    var options = chooser.querySelector(".tag-chooser-options");
    if (!options || !options.querySelector(".tag-option")) return;
    var input = filterBox(chooser);
    options.insertBefore(input, options.firstElementChild.nextSibling);
    chooser.addEventListener("change", function () { showChosen(chooser); });
    chooser.addEventListener("toggle", function () {
      if (chooser.open && document.activeElement === chooser.querySelector("summary")) input.focus();
    });
  }

  function enhanceAll(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches("[data-tag-chooser]")) enhance(root);
    root.querySelectorAll("[data-tag-chooser]").forEach(enhance);
  }

  document.addEventListener("DOMContentLoaded", function () { enhanceAll(document); });
  // Forms swapped in by htmx (a fresh note form after a save, an edit form).
  document.addEventListener("htmx:load", function (event) { enhanceAll(event.detail.elt); });
})();
