// The gateway's own confirm page (`/connect/{provider}/confirm?pending=…`, used when PORTAL_URL
// is empty): confirms a held connection with the portal token of the technician who started
// it, then opens the done page the gateway answers with. The token comes from the URL fragment
// (`#token=…`, never sent to a server; scripts/dev prints such a link) or is pasted; it is kept
// for this tab only (sessionStorage).
"use strict";
(function () {
  var main = document.getElementById("confirm");
  var form = document.getElementById("confirm-form");
  var input = document.getElementById("token");
  var status = document.getElementById("status");
  var KEY = "onecode.portal_token";
  var fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromFragment) {
    sessionStorage.setItem(KEY, fromFragment);
    history.replaceState(null, "", location.pathname + location.search);
  }
  input.value = sessionStorage.getItem(KEY) || "";
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var token = input.value.trim();
    sessionStorage.setItem(KEY, token);
    status.textContent = "Confirming…";
    fetch("/v1/connect/confirm", {
      method: "POST",
      headers: { authorization: "Bearer " + token, "content-type": "application/json" },
      body: JSON.stringify({ pending: main.dataset.pending }),
    })
      .then(function (response) {
        return response.json().then(
          function (body) { return { ok: response.ok, status: response.status, body: body }; },
          function () { return { ok: false, status: response.status, body: {} }; }
        );
      })
      .then(function (r) {
        if (r.ok && typeof r.body.done_url === "string") {
          location.replace(r.body.done_url);
        } else {
          status.textContent = r.body.detail || "The gateway answered " + r.status + ".";
        }
      })
      .catch(function (e) {
        status.textContent = "The gateway could not be reached: " + e.message;
      });
  });
})();
