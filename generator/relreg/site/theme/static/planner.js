/* relreg: the update planner (/update/). It reads the documents devices read and applies the rules of
   relreg.devices.update (docs/devices.md): a precomputed answer (from/<version>.json) for every known
   version, hop by hop, and a local decision from candidates.json only for versions the registry does not
   know. tests/test_planner.py holds the local decision equal to relreg.devices.update's. */
(function () {
  "use strict";

  var BUCKETS = 10000;
  var FULL_ROLLOUT = BUCKETS;
  var MAX_HOPS = 64;
  var MAX_NOTES = 30;

  // ---------------------------------------------------------------------------------------------
  // Versions, ordered as relreg.registry.versions orders them (keys compare like Python tuples).

  var IDENT = "(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)";
  var SEMVER = new RegExp("^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)" +
    "(?:-(" + IDENT + "(?:\\." + IDENT + ")*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$");
  // Whole text only, as Python's \Z: "1.2\n" is no version.
  var NATURAL = /^([0-9]+(?:\.[0-9]+)*)(?:[-.+~_]?([A-Za-z][0-9A-Za-z.+-]*))?$/;

  function VersionError(message) { this.message = message; }

  function identifierKey(part) {
    return /^[0-9]+$/.test(part) ? [0, BigInt(part)] : [1, part];
  }

  function parseVersion(scheme, text) {
    var match;
    if (scheme === "semver") {
      match = SEMVER.exec(text);
      if (!match) {
        throw new VersionError("'" + text + "' is not a SemVer 2.0 version (MAJOR.MINOR.PATCH, e.g. 1.4.2 or 2.0.0-rc.1)");
      }
      var pre = match[4] ? match[4].split(".").map(identifierKey) : [];
      return { text: text, key: [BigInt(match[1]), BigInt(match[2]), BigInt(match[3]), pre.length ? 0 : 1, pre],
               prerelease: pre.length > 0 };
    }
    if (scheme === "natural") {
      match = NATURAL.exec(text);
      if (!match) {
        throw new VersionError("'" + text + "' is not a natural version (dot-separated numbers with an optional " +
                               "suffix, e.g. 11.0.0.6, 2022.01.3 or 1.2.0rc1)");
      }
      var numbers = match[1].split(".").map(function (n) { return BigInt(n); });
      while (numbers.length > 1 && numbers[numbers.length - 1] === 0n) { numbers.pop(); }
      var suffix = match[2] ? (match[2].toLowerCase().match(/[0-9]+|[A-Za-z]+/g) || []).map(identifierKey) : [];
      return { text: text, key: [numbers, match[2] ? 0 : 1, suffix], prerelease: Boolean(match[2]) };
    }
    throw new VersionError("unknown version scheme '" + scheme + "'");
  }

  function compare(a, b) {
    if (Array.isArray(a)) {
      for (var i = 0; i < a.length && i < b.length; i += 1) {
        var order = compare(a[i], b[i]);
        if (order !== 0) { return order; }
      }
      return a.length - b.length < 0 ? -1 : a.length > b.length ? 1 : 0;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Staged rollouts: bucket = first 8 bytes of sha256(serial \0 cohort \0 version), big-endian, mod 10,000.

  function bucket(serial, cohort, version) {
    var bytes = new TextEncoder().encode(serial + "\0" + cohort + "\0" + version);
    return crypto.subtle.digest("SHA-256", bytes).then(function (digest) {
      var view = new DataView(digest);
      return Number(view.getBigUint64(0, false) % BigInt(BUCKETS));
    });
  }

  function inRollout(threshold, serial, cohort, version) {
    if (threshold >= FULL_ROLLOUT) { return Promise.resolve(true); }
    if (threshold <= 0) { return Promise.resolve(false); }
    return bucket(serial, cohort, version).then(function (b) { return b < threshold; });
  }

  // offers: [{version, threshold}] in order; resolves to the index of the first the device is in, or -1.
  function chooseIndex(offers, serial, cohort) {
    var index = 0;
    function next() {
      if (index >= offers.length) { return Promise.resolve(-1); }
      var offer = offers[index];
      return inRollout(offer.threshold, serial, cohort, offer.version).then(function (inside) {
        if (inside) { return index; }
        index += 1;
        return next();
      });
    }
    return next();
  }

  // ---------------------------------------------------------------------------------------------
  // The decision from a channel's candidates (update.plan_update), for versions the registry does not know.

  function payloadFrom(candidate, currentText) {
    var full = null;
    for (var i = 0; i < candidate.artifacts.length; i += 1) {
      var artifact = candidate.artifacts[i];
      if (artifact.delta_from === null) { if (full === null) { full = artifact; } }
      else if (artifact.delta_from === currentText) { return artifact; }
    }
    return full;
  }

  function response(candidate, payload, reason) {
    return {
      id: candidate.id, version: candidate.version, revision: candidate.revision,
      min_version: candidate.min_version || "", is_delta: payload.delta_from !== null,
      must_pass_through: candidate.must_pass_through, reason: reason, created_date: candidate.created_date,
      release_url: candidate.release_url, artifacts: [payload]
    };
  }

  // data: the `data` of candidates.json. Returns {offers: [{rollout_percent, rollout_threshold, release}],
  // up_to_date: document or null}: the shape of a precomputed answer, so both are read alike.
  function planFromCandidates(data, currentText) {
    var scheme = data.version_scheme;
    var current = parseVersion(scheme, currentText);
    var barrier = null;
    for (var b = 0; b < data.must_pass_through.length; b += 1) {
      var key = parseVersion(scheme, data.must_pass_through[b]).key;
      if (compare(key, current.key) > 0) { barrier = key; break; }
    }
    var offers = [];
    var declined = false, gated = false, held = false;
    for (var i = data.candidates.length - 1; i >= 0; i -= 1) {
      var candidate = data.candidates[i];
      var candidateKey = parseVersion(scheme, candidate.version).key;
      if (compare(candidateKey, current.key) <= 0) { break; }
      if (barrier !== null && compare(candidateKey, barrier) > 0) { held = true; continue; }
      var payload = payloadFrom(candidate, current.text);
      var minimum = candidate.min_version ? parseVersion(scheme, candidate.min_version).key : null;
      if ((minimum !== null && compare(current.key, minimum) < 0) || payload === null) { gated = true; continue; }
      // a paused (0 %) candidate is offered too, and taken by nobody, as relreg.devices.update.plan_update does
      var threshold = candidate.rollout_threshold;
      var reason = declined ? "outside_rollout" : gated ? "min_version" : held ? "must_pass_through" : "latest";
      offers.push({ rollout_percent: candidate.rollout_percent, rollout_threshold: threshold,
                    release: response(candidate, payload, reason) });
      if (threshold >= FULL_ROLLOUT) { return { offers: offers, up_to_date: null }; }
      declined = true;
    }
    var why = declined ? "outside_rollout" : (gated || held) ? "blocked" : "latest";
    return { offers: offers, up_to_date: { up_to_date: true, current_version: current.text, reason: why } };
  }

  // What one device gets from a plan (an answer or planFromCandidates): the device response document.
  function choose(plan, serial, cohort, currentText) {
    var offers = plan.offers.map(function (o) { return { version: o.release.version, threshold: o.rollout_threshold }; });
    return chooseIndex(offers, serial, cohort).then(function (index) {
      if (index >= 0) { return plan.offers[index].release; }
      return plan.up_to_date || { up_to_date: true, current_version: currentText, reason: "latest" };
    });
  }

  function decide(data, currentText, serial) {
    return choose(planFromCandidates(data, currentText), serial, data.cohort, currentText);
  }

  var api = { parseVersion: parseVersion, compare: compare, bucket: bucket, chooseIndex: chooseIndex,
              planFromCandidates: planFromCandidates, planFromAnswer: planFromAnswer, choose: choose, decide: decide,
              VersionError: VersionError };
  window.relregPlanner = api;

  // ---------------------------------------------------------------------------------------------
  // The page

  var form = document.getElementById("planner");
  if (!form) { return; }
  var root = form.getAttribute("data-root");
  var out = document.getElementById("plan");
  var status = document.getElementById("plan-status");
  var notesOut = document.getElementById("plan-notes");
  var fields = ["cohort", "hardware", "software", "current", "serial"];
  var PATH_SAFE = /^(?!.*\.\.)[0-9][0-9A-Za-z.+-]{0,63}$/;
  var REASONS = {
    latest: "the newest release deployed to this cohort",
    outside_rollout: "a newer release is rolling out, and this device is outside its rollout",
    min_version: "a step on the path: a newer release needs a higher current version",
    must_pass_through: "a required step: newer releases wait until the device runs it",
    blocked: "newer releases exist, but none is reachable from this version (a min_version or a required step the cohort does not deploy)"
  };
  form.hidden = false;

  function el(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function size(bytes) {
    if (bytes < 1024) { return bytes + " B"; }
    var value = bytes, units = ["KiB", "MiB", "GiB", "TiB"];
    for (var i = 0; i < units.length; i += 1) {
      value /= 1024;
      if (value < 1024 || i === units.length - 1) { return value.toFixed(1) + " " + units[i]; }
    }
    return bytes + " B";
  }

  function getJSON(path) {
    return fetch(root + path, { cache: "no-cache" }).then(function (answer) {
      if (answer.status === 404) { return null; }
      if (!answer.ok) { throw new Error("HTTP " + answer.status + " for " + path); }
      return answer.json();
    });
  }

  function channelFolder(state) {
    return "api/v1/devices/" + encodeURIComponent(state.cohort) + "/" + encodeURIComponent(state.hardware) + "/" +
      encodeURIComponent(state.software || "_");
  }

  var candidatesCache = {};
  function candidates(state) {
    var path = channelFolder(state) + "/candidates.json";
    if (!candidatesCache[path]) { candidatesCache[path] = getJSON(path); }
    return candidatesCache[path];
  }

  var rolloutsCache = {};
  function rollouts(state) {
    var path = channelFolder(state) + "/rollouts.json";
    if (!rolloutsCache[path]) { rolloutsCache[path] = getJSON(path); }
    return rolloutsCache[path];
  }

  // An answer's offers with their rollouts: a staged offer's percent is in the channel's rollouts.json (0 when
  // it is not listed there), the others reach everybody (relreg.devices.update.answer_thresholds).
  // data: the `data` of an answer; rolloutsData: the `data` of the channel's rollouts.json (or null when no offer
  // is staged). Returns the plan, in the shape planFromCandidates gives.
  function planFromAnswer(data, rolloutsData) {
    var entries = {};
    (rolloutsData ? rolloutsData.rollouts : []).forEach(function (entry) { entries[entry.version] = entry; });
    var offers = data.offers.map(function (o) {
      var entry = o.staged ? (entries[o.release.version] || { rollout_percent: 0, rollout_threshold: 0 })
        : { rollout_percent: 100, rollout_threshold: FULL_ROLLOUT };
      return { rollout_percent: entry.rollout_percent, rollout_threshold: entry.rollout_threshold, release: o.release };
    });
    return { offers: offers, up_to_date: data.up_to_date };
  }

  function withRollouts(state, data) {
    var staged = data.offers.some(function (o) { return o.staged; });
    var listed = staged ? rollouts(state) : Promise.resolve(null);
    return listed.then(function (found) {
      if (staged && !found) { throw new Error("The site has an answer with staged offers but no rollouts document for this channel."); }
      return planFromAnswer(data, found ? found.data : null);
    });
  }

  // One check, as the reference client does it: the precomputed answer (and the rollouts of its staged offers),
  // else the local decision.
  function check(state, version) {
    var answer = PATH_SAFE.test(version)
      ? getJSON(channelFolder(state) + "/from/" + encodeURIComponent(version) + ".json")
      : Promise.resolve(null);
    return answer.then(function (found) {
      if (found) {
        return withRollouts(state, found.data).then(function (plan) { return { plan: plan, source: "answer" }; });
      }
      return candidates(state).then(function (listed) {
        if (!listed) { throw new Error("The site has no update channel for this cohort, hardware version and software type."); }
        return { plan: planFromCandidates(listed.data, version), source: "candidates" };
      });
    });
  }

  function readState() {
    var state = {};
    fields.forEach(function (name) {
      var input = form.elements[name];
      state[name] = input ? input.value.trim() : "";
    });
    return state;
  }

  function writeURL(state) {
    var query = new URLSearchParams();
    fields.forEach(function (name) { if (state[name]) { query.set(name, state[name]); } });
    var suffix = query.toString();
    try {
      window.history.replaceState(null, "", suffix ? "?" + suffix : window.location.pathname);
    } catch (error) { /* file:// pages may refuse this */ }
  }

  function fromURL() {
    var params = new URLSearchParams(window.location.search);
    if (params.has("version") && !params.has("current")) { params.set("current", params.get("version")); }
    fields.forEach(function (name) {
      var input = form.elements[name];
      if (!input || !params.has(name)) { return; }
      input.value = params.get(name);
      if (input.value !== params.get(name)) { input.value = ""; }
    });
  }

  function hopItem(hop, index, state) {
    var release = hop.release, artifact = release.artifacts[0];
    var details = [];
    var payload = artifact.delta_from !== null
      ? "delta from " + artifact.delta_from + ", " + size(artifact.file_size)
      : "full image, " + size(artifact.file_size);
    details.push(el("li", {}, ["Payload: ", el("a", { href: artifact.url }, [artifact.filename]), " (" + payload + ")"]));
    details.push(el("li", {}, ["Why: " + (REASONS[release.reason] || release.reason)]));
    if (release.min_version) {
      details.push(el("li", {}, ["Gate: needs at least " + release.min_version + " installed (this device has " + hop.from + ")"]));
    }
    if (release.must_pass_through) {
      details.push(el("li", {}, ["Required step: every device below it installs it before anything newer"]));
    }
    if (hop.threshold < FULL_ROLLOUT) {
      var rollout = "Staged rollout: " + hop.percent + " % of the cohort";
      if (!state.serial) { rollout += "; give a serial to know whether this device is in"; }
      else { rollout += "; this serial is in (bucket " + hop.bucket + " < " + hop.threshold + ")"; }
      details.push(el("li", {}, [rollout]));
    }
    hop.skipped.forEach(function (skip) {
      details.push(el("li", {}, ["Not " + skip.version + ": rolling out to " + skip.percent + " %, this serial is outside" +
        (skip.bucket === null ? "" : " (bucket " + skip.bucket + " \u2265 " + skip.threshold + ")")]));
    });
    if (hop.source === "candidates") {
      details.push(el("li", {}, ["Decided here from candidates.json: the registry does not know " + hop.from]));
    }
    var link = el("a", { href: root + "releases/" + encodeURIComponent(release.version) + "/index.html" }, [release.version]);
    return el("li", { "class": "hop", "data-version": release.version, "data-build-id": artifact.build_id }, [
      el("h3", {}, ["Step " + (index + 1) + ": " + hop.from + " \u2192 ", link,
                    release.must_pass_through ? el("span", { "class": "badge badge-info" }, ["required step"]) : ""]),
      el("ul", { "class": "hop-facts" }, details)
    ]);
  }

  // Follows the path: each check gives the next hop; stops when the device is up to date.
  function walk(state) {
    var hops = [];
    function step(version) {
      if (hops.length >= MAX_HOPS) { return Promise.resolve({ hops: hops, end: null, current: version }); }
      return check(state, version).then(function (result) {
        var plan = result.plan;
        var offers = plan.offers;
        var chosen = -1, skipped = [];
        var decided = state.serial
          ? chooseIndex(offers.map(function (o) { return { version: o.release.version, threshold: o.rollout_threshold }; }),
                        state.serial, state.cohort)
          : Promise.resolve(offers.findIndex(function (o) { return o.rollout_threshold > 0; }));
        return decided.then(function (index) {
          chosen = index;
          var limit = index >= 0 ? index : offers.length;
          var buckets = offers.slice(0, limit + (index >= 0 ? 1 : 0)).map(function (o) {
            return state.serial && o.rollout_threshold > 0 && o.rollout_threshold < FULL_ROLLOUT
              ? bucket(state.serial, state.cohort, o.release.version) : Promise.resolve(null);
          });
          return Promise.all(buckets);
        }).then(function (values) {
          for (var i = 0; i < (chosen >= 0 ? chosen : offers.length); i += 1) {
            skipped.push({ version: offers[i].release.version, percent: offers[i].rollout_percent,
                           threshold: offers[i].rollout_threshold, bucket: values[i] });
          }
          if (chosen < 0) {
            var end = plan.up_to_date || { up_to_date: true, current_version: version, reason: "latest" };
            return { hops: hops, end: end, current: version, skipped: skipped };
          }
          var offer = offers[chosen];
          hops.push({ from: version, release: offer.release, percent: offer.rollout_percent,
                      threshold: offer.rollout_threshold, bucket: values[chosen], skipped: skipped, source: result.source });
          return step(offer.release.version);
        });
      });
    }
    return step(state.current);
  }

  function releaseNotes(state, current, target) {
    notesOut.textContent = "";
    if (current === target) { return Promise.resolve(); }
    return Promise.all([getJSON("update/releases.json"), candidates(state)]).then(function (documents) {
      var list = documents[0], scheme = list.version_scheme;
      var low = parseVersion(scheme, current).key, high = parseVersion(scheme, target);
      var between = list.releases.filter(function (item) {
        if (item.hardware_versions.indexOf(state.hardware) < 0) { return false; }
        var key = parseVersion(scheme, item.version);
        if (key.prerelease && !high.prerelease) { return false; }
        return compare(key.key, low) > 0 && compare(key.key, high.key) <= 0;
      }).reverse();  // newest first
      var shown = between.slice(0, MAX_NOTES);
      notesOut.appendChild(el("h2", { id: "notes-heading" }, ["Release notes from " + current + " to " + target]));
      if (between.length > shown.length) {
        notesOut.appendChild(el("p", { "class": "muted" }, ["The newest " + shown.length + " of " + between.length +
          " releases; the others are on the releases list."]));
      }
      return Promise.all(shown.map(function (item) {
        return getJSON("api/v1/releases/" + encodeURIComponent(item.version) + ".json");
      })).then(function (releases) {
        releases.forEach(function (found, index) {
          var version = shown[index].version;
          var section = el("section", { "class": "combined-notes" }, [
            el("h3", {}, [el("a", { href: root + "releases/" + encodeURIComponent(version) + "/index.html" }, [version])])]);
          var notes = el("div", { "class": "notes" });
          // The notes in the JSON are sanitized at build time (relreg.site.notes), like the release pages' copy.
          if (found && found.data.notes) { notes.innerHTML = found.data.notes; }
          else { notes.appendChild(el("p", { "class": "muted" }, ["No release notes."])); }
          // The notes' highest heading becomes h4, under this section's h3 (as nest_headings does on release pages).
          var headings = notes.querySelectorAll("h1, h2, h3, h4, h5, h6");
          var highest = 6;
          Array.prototype.forEach.call(headings, function (h) { highest = Math.min(highest, Number(h.tagName.charAt(1))); });
          Array.prototype.forEach.call(headings, function (heading) {
            var lower = document.createElement("h" + Math.min(6, Number(heading.tagName.charAt(1)) + Math.max(0, 4 - highest)));
            while (heading.firstChild) { lower.appendChild(heading.firstChild); }
            heading.replaceWith(lower);
          });
          section.appendChild(notes);
          notesOut.appendChild(section);
        });
      });
    });
  }

  function render(state) {
    out.textContent = "";
    notesOut.textContent = "";
    if (!state.cohort || !state.hardware || !state.current) {
      status.textContent = "Choose a cohort and a hardware version, and enter the version the device runs.";
      return Promise.resolve();
    }
    if (window.location.protocol === "file:") {
      status.textContent = "The planner reads the site's JSON documents, which browsers do not let a page read from " +
        "file://: serve the folder over http (for example relreg serve), or use the documents below.";
      return Promise.resolve();
    }
    if (state.serial && !(window.crypto && window.crypto.subtle)) {
      status.textContent = "Deciding staged rollouts needs the browser's SHA-256, which it offers only on https " +
        "(and localhost) pages: open the site over https, or leave the serial empty.";
      return Promise.resolve();
    }
    status.textContent = "Working out the path\u2026";
    return walk(state).then(function (result) {
      var target = result.hops.length ? result.hops[result.hops.length - 1].release.version : state.current;
      if (result.hops.length === 0) {
        status.textContent = "Up to date: " + (REASONS[result.end.reason] || result.end.reason) + ".";
      } else {
        status.textContent = result.hops.length + (result.hops.length === 1 ? " step" : " steps") + " from " +
          state.current + " to " + target + (result.end ? ", then up to date." : " (stopped after " + MAX_HOPS + " steps).");
      }
      if (result.hops.length) {
        out.appendChild(el("h2", { id: "path-heading" }, ["The path from " + state.current]));
        out.appendChild(el("ol", { "class": "hops" }, result.hops.map(function (hop, index) { return hopItem(hop, index, state); })));
      }
      if (result.end && result.hops.length) {
        var endText = "Then up to date on " + result.current + ": " + (REASONS[result.end.reason] || result.end.reason) + ".";
        out.appendChild(el("p", { "class": "plan-end" }, [endText]));
      }
      if (result.end) {
        result.skipped.forEach(function (skip) {
          out.appendChild(el("p", { "class": "muted" }, [skip.version + " is rolling out to " + skip.percent +
            " %; this serial is outside" + (skip.bucket === null ? "." : " (bucket " + skip.bucket + " \u2265 " + skip.threshold + ").")]));
        });
      }
      return releaseNotes(state, state.current, target);
    }).catch(function (error) {
      status.textContent = error instanceof VersionError ? "Current version: " + error.message
        : "Could not work out the path: " + (error && error.message ? error.message : String(error));
    });
  }

  var running = Promise.resolve();
  function update() {
    var state = readState();
    writeURL(state);
    running = running.then(function () { return render(state); });
    form.setAttribute("data-busy", "true");
    running.then(function () { form.removeAttribute("data-busy"); });
  }

  fromURL();
  form.addEventListener("submit", function (event) { event.preventDefault(); update(); });
  form.addEventListener("change", update);
  update();
}());
