// Live updates: when the daemon publishes a change (server-sent events from
// /ui/events), fetch this page again and swap its #live part in place.
// Without JavaScript the pages still work; they just don't update themselves.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource || !window.fetch) return;
  var status = document.getElementById("live-status");
  var busy = false, again = false;
  function say(text) { if (status) status.textContent = text; }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { location.reload(); return null; }
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live"), cur = document.getElementById("live");
        if (fresh && cur) cur.replaceWith(fresh);
        if (doc.body) document.body.dataset.changes = doc.body.dataset.changes || "";
        say("Live · updated " + new Date().toLocaleTimeString());
      })
      .catch(function () { say("Live · update failed, retrying"); })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var since = document.body.dataset.changes || "";
  var events = new EventSource("/ui/events?since=" + encodeURIComponent(since));
  events.addEventListener("open", function () { say("Live"); });
  events.addEventListener("change", refresh);
  events.addEventListener("error", function () { say("Live · reconnecting…"); });
})();
