/* relreg: copy buttons and the releases list search. Every page works without this script:
   the hardware filter is CSS, and ids can be found with the browser's find in page. */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
      document.body.removeChild(area);
      if (copied) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  var status = document.getElementById("copy-status");
  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    var timer = 0;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(button.getAttribute("data-copy")).then(function () {
        button.textContent = "Copied";
        if (status) { status.textContent = "SHA-256 copied to the clipboard."; }
      }, function () {
        button.textContent = "Copy failed";
        if (status) { status.textContent = "Could not copy; select the checksum and copy it."; }
      });
      clearTimeout(timer);
      timer = setTimeout(function () { button.textContent = "Copy"; }, 2000);
    });
  });

  var form = document.getElementById("filter");
  var table = document.getElementById("release-table");
  if (!form || !table) { return; }
  var select = document.getElementById("hardware");
  var search = document.getElementById("q");
  var count = document.getElementById("count");
  var empty = document.getElementById("empty");
  var rows = Array.prototype.map.call(table.tBodies[0].rows, function (row) {
    var keys = Array.prototype.map.call(row.querySelectorAll(".k"), function (element) {
      return element.textContent.toLowerCase();
    });
    return { row: row, hardware: (row.getAttribute("data-hw") || "").split(" "), keys: keys.join(" ") };
  });
  document.getElementById("search-field").hidden = false;

  var params = new URLSearchParams(window.location.search);
  if (params.has("hardware")) {
    select.value = params.get("hardware");
    if (select.value !== params.get("hardware")) { select.value = ""; }
  }
  if (params.has("q")) { search.value = params.get("q"); }

  function apply() {
    var hardware = select.value;
    var terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (item) {
      var visible = (!hardware || item.hardware.indexOf(hardware) >= 0) &&
        terms.every(function (term) { return item.keys.indexOf(term) >= 0; });
      item.row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    var total = rows.length;
    count.textContent = shown === total
      ? total + (total === 1 ? " release" : " releases") + ", newest first."
      : "Showing " + shown + " of " + total + " releases.";
    empty.hidden = shown > 0;
    var query = new URLSearchParams();
    if (hardware) { query.set("hardware", hardware); }
    if (search.value.trim()) { query.set("q", search.value.trim()); }
    var suffix = query.toString();
    try {
      window.history.replaceState(null, "", suffix ? "?" + suffix : window.location.pathname);
    } catch (error) { /* some browsers refuse this on file:// pages; the filter still works */ }
  }

  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
  apply();
}());
