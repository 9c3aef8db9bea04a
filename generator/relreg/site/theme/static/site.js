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
  var countNodes = Array.prototype.slice.call(count.childNodes).map(function (node) { return node.cloneNode(true); });
  var empty = document.getElementById("empty");
  var match = document.getElementById("build-match");
  var builds = Array.prototype.map.call(table.querySelectorAll("code[data-hw]"), function (code) {
    var row = code.closest("tr");
    return { id: code.textContent.toLowerCase(), code: code, row: row, link: row.querySelector("a.version") };
  });
  // A build id as crash logs print it: "BuildID[sha1]=8A73...", "build id: 0x8a73...", or the bare hex.
  var BUILD_PREFIX = /^(?:(?:gnu\s+)?build[\s_-]*id\s*(?:\[[a-z0-9]+\])?\s*[:=]?\s*)?(?:0x)?/i;
  function buildIdOf(text) {
    var hex = text.trim().replace(BUILD_PREFIX, "").toLowerCase();
    return /^[0-9a-f]{6,}$/.test(hex) ? hex : "";
  }
  function describe(found) {
    var code = found.code, parts = ["hardware " + code.getAttribute("data-hw")];
    if (code.hasAttribute("data-sw")) { parts.push("software type " + code.getAttribute("data-sw")); }
    parts.push(code.hasAttribute("data-from") ? "delta from " + code.getAttribute("data-from") : "full image");
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = found.link.getAttribute("href") + "#artifacts";
    link.textContent = found.link.textContent;
    item.appendChild(document.createTextNode("Build id " + found.id + ": the artifact for " + parts.join(", ") + " in release "));
    item.appendChild(link);
    return item;
  }
  function showBuildMatches(hex, prefixed) {
    match.textContent = "";
    var found = hex ? builds.filter(function (b) { return b.id.indexOf(hex) >= 0; }) : [];
    match.hidden = !found.length && !prefixed;
    if (match.hidden) { return; }
    if (!found.length) {
      match.textContent = "No artifact " + (paged ? "on this page " : "") + "has a build id containing " + hex + ".";
      return;
    }
    var list = document.createElement("ul");
    list.className = "plain";
    found.slice(0, 5).forEach(function (b) { list.appendChild(describe(b)); });
    match.appendChild(list);
    if (found.length > 5) {
      var more = document.createElement("p");
      more.textContent = found.length + " artifacts match; enter more of the build id.";
      match.appendChild(more);
    }
  }
  // A long list is paged (pages.list_pages): the rows here are some releases. A search that matches none of
  // them is looked up among every release as a whole version, revision or build id, through the API's list of
  // that query dimension (api/v1/releases/<dimension>/<key>.json, absent (404) when no release has it).
  var box = document.getElementById("releases");
  var paged = box.hasAttribute("data-paged");
  var siteRoot = box.getAttribute("data-root") || "";
  var elsewhere = document.getElementById("elsewhere");
  var lookups = 0, lookupTimer = 0;
  function releaseHref(version) {
    return siteRoot + "releases/" + encodeURIComponent(version) + "/index.html";
  }
  function lookUp(dimension, key) {
    return fetch(siteRoot + "api/v1/releases/" + dimension + "/" + encodeURIComponent(key) + ".json").then(
      function (response) { return response.ok ? response.json() : { data: [] }; }
    ).then(function (body) { return body.data || []; }, function () { return null; });
  }
  var lastAsked = null;
  function showElsewhere(term, hex, shown) {
    // The change event of leaving the search box (as a click on a link found here does) asks nothing new.
    if (!paged || (term + "\n" + !shown) === lastAsked) { return; }
    lastAsked = term + "\n" + !shown;
    var ticket = ++lookups;
    clearTimeout(lookupTimer);
    elsewhere.hidden = true;
    elsewhere.textContent = "";
    if (shown || !window.fetch || !term) { return; }
    // Only what the schemas allow (schemas/release.schema.json): a pasted crash-log line ("Build ID: 0x...")
    // asks for its build id alone. A revision is asked as typed and in lower case (git's), as the rows match.
    var asked = [];
    if (hex.length >= 8 && hex.length <= 64) { asked.push(["build_id", hex]); }
    if (/^(?!.*\.\.)[0-9][0-9A-Za-z.+-]{0,63}$/.test(term)) { asked.push(["version", term]); }
    if (/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$/.test(term)) {
      asked.push(["revision", term]);
      if (term.toLowerCase() !== term) { asked.push(["revision", term.toLowerCase()]); }
    }
    if (!asked.length) { return; }
    if (window.location.protocol === "file:") {  // a page opened from a file may not fetch another
      elsewhere.textContent = "Only the releases on this page were searched: other pages cannot be read from here.";
      elsewhere.hidden = false;
      return;
    }
    lookupTimer = setTimeout(function () {
      Promise.all(asked.map(function (item) { return lookUp(item[0], item[1]); })).then(function (answers) {
        if (ticket !== lookups) { return; }
        var seen = {}, found = [];
        answers.forEach(function (releases, index) {
          (releases || []).forEach(function (release) {
            if (!seen[release.version]) {
              seen[release.version] = true;
              found.push([release.version, asked[index][0].replace("_", " "), asked[index][1]]);
            }
          });
        });
        if (answers.every(function (answer) { return answer === null; })) {
          elsewhere.textContent = "Only the releases on this page were searched: other pages cannot be read from here.";
          elsewhere.hidden = false;
          return;
        }
        if (!found.length) {
          elsewhere.textContent = "Nor has a release on another page the whole version, revision or build id " + term +
            " (other pages are searched for whole ones; a part finds the releases of this page only).";
          elsewhere.hidden = false;
          return;
        }
        var list = document.createElement("ul");
        list.className = "plain";
        found.forEach(function (item) {
          var entry = document.createElement("li");
          var link = document.createElement("a");
          link.href = releaseHref(item[0]);
          link.textContent = item[0];
          entry.appendChild(document.createTextNode("Release "));
          entry.appendChild(link);
          entry.appendChild(document.createTextNode((onPage[item[0]] ? ", on this page but not for the hardware chosen, has the "
            : ", listed on another page, has the ") + item[1] + " " + item[2] + "."));
          list.appendChild(entry);
        });
        elsewhere.appendChild(list);
        elsewhere.hidden = false;
      });
    }, 250);
  }
  var onPage = {};
  var rows = Array.prototype.map.call(table.tBodies[0].rows, function (row) {
    onPage[row.querySelector("a.version").textContent] = true;
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
    var hex = buildIdOf(search.value);
    var terms = hex ? [hex] : search.value.toLowerCase().split(/\s+/).filter(Boolean);
    showBuildMatches(hex, hex !== "" && hex !== search.value.trim().toLowerCase());
    var shown = 0;
    rows.forEach(function (item) {
      var visible = (!hardware || item.hardware.indexOf(hardware) >= 0) &&
        terms.every(function (term) { return item.keys.indexOf(term) >= 0; });
      item.row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    var total = rows.length;
    if (shown !== total) {
      count.textContent = "Showing " + shown + " of " + total + " releases" + (paged ? " on this page." : ".");
    } else {  // every row shows: the page's own words (a paged list's count links to the other pages)
      count.textContent = "";
      countNodes.forEach(function (node) { count.appendChild(node.cloneNode(true)); });
    }
    showElsewhere(search.value.trim(), hex, shown);
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
