// hookrelay dashboard: the one script. It keeps the activity log up to date
// by asking the server for the table's rows again every few seconds; the
// rows are rendered by the server, as the rest of the page is.
"use strict";
(function () {
  var body = document.querySelector("tbody[data-live]");
  if (!body) return;
  var url = body.getAttribute("data-live");
  var every = 2000;
  var busy = false;
  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location = "/ui/signin"; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== body.innerHTML) body.innerHTML = html;
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
