// The desk's one enhancement: the plan form's preview follows what the
// manager types. The server computes it (the same rules as a definition);
// without this script the form's Preview button posts for the same page.
(function () {
  "use strict";
  var form = document.getElementById("plan-form");
  var preview = document.getElementById("preview");
  if (!form || !preview || !window.fetch) { return; }
  var timer = null, asked = 0;
  function refresh() {
    var n = ++asked;
    // A post, as the form's own Preview button: the CSRF token goes in
    // the body, never into an address.
    fetch("/desk/plans/preview", { method: "POST", credentials: "same-origin",
      body: new URLSearchParams(new FormData(form)) })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (n !== asked) { return; } // a newer one is on its way
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("preview");
        if (fresh) { preview.innerHTML = fresh.innerHTML; }
      })
      .catch(function () { /* the Preview button still works */ });
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();
