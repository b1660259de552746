// Live refresh of the debug pages: fetch this same page every few seconds, swap the live regions
// in place and mark the numbers that changed. The server computes the numbers once per interval
// for all viewers, so an open tab costs little. Without JavaScript a <noscript> meta refresh
// reloads the page instead.
(function () {
  "use strict";
  var cfg = document.getElementById("live-config");
  if (!cfg) return;
  var every = Number(cfg.dataset.every) || 5000;
  var regions = (cfg.dataset.regions || "").split(" ").filter(Boolean);
  var button = document.getElementById("live-toggle");
  var status = document.getElementById("live-status");
  var key = "todo-live-paused";
  var paused = window.localStorage.getItem(key) === "1";

  function show(text) {
    button.textContent = paused ? "Resume live refresh" : "Pause live refresh";
    button.setAttribute("aria-pressed", String(paused));
    status.textContent = text || (paused ? "paused" : "live: refreshes every " + every / 1000 + " s");
  }

  function leaves(root) {
    return Array.prototype.filter.call(root.querySelectorAll("*"), function (e) {
      return e.children.length === 0 && e.tagName.toLowerCase() !== "title";
    });
  }

  function markChanges(old, fresh) {
    var a = leaves(old), b = leaves(fresh);
    if (a.length !== b.length) return;
    for (var i = 0; i < a.length; i++) {
      if (a[i].textContent.trim() !== b[i].textContent.trim()) {
        b[i].classList.add("live-changed");
        b[i].setAttribute("data-changed", a[i].textContent.trim());
      }
    }
  }

  function tick() {
    if (paused) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        regions.forEach(function (id) {
          var old = document.getElementById(id), fresh = doc.getElementById(id);
          if (!old || !fresh) return;
          markChanges(old, fresh);
          old.replaceWith(document.importNode(fresh, true));
        });
        var when = doc.getElementById("live-computed"), here = document.getElementById("live-computed");
        if (when && here) here.replaceWith(document.importNode(when, true));
        show();
      })
      .catch(function (e) { show("refresh failed (" + e.message + "); trying again"); });
  }

  button.hidden = false;
  button.addEventListener("click", function () {
    paused = !paused;
    window.localStorage.setItem(key, paused ? "1" : "0");
    show();
    if (!paused) tick();
  });
  show();
  window.setInterval(tick, every);
})();
