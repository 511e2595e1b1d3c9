// The gateway's console (`GET /console`): a person drives the portal API by hand with a portal
// token. It is the API's reference client: everything it shows or does goes through the public
// `/v1/*` routes, with the token as a bearer header (never a cookie). No build step, no
// third-party code, no inline script or style (the page's Content-Security-Policy forbids them):
// every value from the API goes into the page as text, never as HTML.
//
// The token comes from the URL fragment (`#token=…`, never sent to a server; scripts/dev prints
// such a link) or is pasted, and is kept for this tab only (sessionStorage, under the key the
// confirm page reads, so a connect started here is confirmed there without pasting it again).
"use strict";
(function () {
  var KEY = "onecode.portal_token";
  var $ = function (id) { return document.getElementById(id); };
  var token = "";
  var current = null; // the org shown in the detail section

  // ---- the API ----

  // Calls the API; resolves with the parsed body, rejects with the problem detail (or what
  // stood in for it) after showing it.
  function api(method, path, body) {
    var init = { method: method, headers: { authorization: "Bearer " + token } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(
      function (response) {
        return response.text().then(function (text) {
          var parsed = null;
          try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
          if (response.ok) {
            return parsed;
          }
          var problem = parsed && typeof parsed === "object" ? parsed : {};
          throw showProblem(method + " " + path, response.status, problem);
        });
      },
      function (e) {
        throw showError(method + " " + path + ": the gateway could not be reached (" + e.message + ")");
      }
    );
  }

  // Every page of a cursor-paged list, each page handed to `each` as it arrives.
  function allPages(path, each) {
    var sep = path.indexOf("?") < 0 ? "?" : "&";
    function next(cursor) {
      var url = path + sep + "limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      return api("GET", url).then(function (page) {
        each(page.items || []);
        return page.next_cursor ? next(page.next_cursor) : null;
      });
    }
    return next("");
  }

  // ---- showing things ----

  function showProblem(what, status, problem) {
    var text = (problem.title || "Error") + " (" + status + (problem.code ? ", " + problem.code : "") + "): " +
      (problem.detail || "the gateway answered " + status) + "\n" + what;
    return showError(text);
  }

  function showError(text) {
    var box = $("error");
    box.textContent = text;
    box.hidden = false;
    return new Error(text);
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell) {
      var td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "" : String(cell);
      tr.appendChild(td);
    });
    return tr;
  }

  function status(value) {
    return el("span", value || "never", "status-" + (value || "none"));
  }

  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "never";
  }

  function button(label, onClick) {
    var b = el("button", label);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  // ---- organizations ----

  function loadOrgs() {
    clearError();
    var form = $("filters");
    var query = ["provider", "client", "status"]
      .filter(function (name) { return form.elements[name].value.trim() !== ""; })
      .map(function (name) { return name + "=" + encodeURIComponent(form.elements[name].value.trim()); })
      .join("&");
    var body = $("orgs").tBodies[0];
    body.textContent = "";
    var count = 0;
    $("org-count").textContent = "(loading…)";
    return allPages("/v1/orgs" + (query ? "?" + query : ""), function (orgs) {
      var rows = document.createDocumentFragment();
      orgs.forEach(function (org) {
        var tr = row([org.display_name ? org.login + " (" + org.display_name + ")" : org.login, org.provider,
          org.client || "", status(org.status), org.repo_count, org.repos_backed_up, when(org.last_synced_at)]);
        tr.className = "pick";
        tr.dataset.org = org.id;
        tr.addEventListener("click", function () { showOrg(org.id); });
        rows.appendChild(tr);
      });
      body.appendChild(rows);
      count += orgs.length;
      $("org-count").textContent = "(" + count + ")";
    }).then(function () {
      body.dataset.loaded = String(count);
    }, function () {
      $("org-count").textContent = "";
    });
  }

  function showOrg(id) {
    clearError();
    return api("GET", "/v1/orgs/" + encodeURIComponent(id)).then(function (org) {
      current = org;
      $("org").hidden = false;
      $("org").dataset.org = org.id;
      $("org-title").textContent = org.login + " · " + org.provider + " · " + org.status;
      $("org-result").textContent = "";
      var form = $("settings");
      form.elements.client.value = org.client || "";
      form.elements.backup_schedule.value = org.backup_schedule;
      form.elements.backup_hour.value = org.backup_hour;
      form.elements.retention_days.value = org.retention_days;
      Array.prototype.forEach.call($("orgs").tBodies[0].rows, function (tr) {
        tr.classList.toggle("selected", tr.dataset.org === org.id);
      });
      $("snapshots").hidden = true;
      return Promise.all([loadRepos(org), loadActivity(org), loadAccess(org), loadPosture(org)]);
    });
  }

  function loadRepos(org) {
    var body = $("repos").tBodies[0];
    body.textContent = "";
    return allPages("/v1/orgs/" + encodeURIComponent(org.id) + "/repos", function (repos) {
      repos.forEach(function (repo) {
        var backup = el("span");
        backup.appendChild(status(repo.last_backup_status));
        if (repo.last_backup_at) backup.appendChild(el("span", " " + when(repo.last_backup_at), "note"));
        body.appendChild(row([repo.full_name, status(repo.status), backup,
          button("Snapshots", function () { loadSnapshots(org, repo); })]));
      });
    });
  }

  function restoreCommand(snapshot, repo) {
    return "ONECODE_URL=" + location.origin + " ONECODE_TOKEN=\"$ONECODE_TOKEN\" scripts/restore " +
      snapshot.id + " " + repo.name;
  }

  function copyButton(text) {
    return button("Copy", function (event) {
      var b = event.target;
      var done = function () { b.textContent = "Copied"; };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(text).then(done, function () { b.textContent = "Select and copy"; });
      }
    });
  }

  function loadSnapshots(org, repo) {
    clearError();
    var box = $("snapshots");
    var body = box.querySelector("tbody");
    body.textContent = "";
    $("snapshots-title").textContent = "Snapshots of " + repo.full_name;
    box.hidden = false;
    var path = "/v1/orgs/" + encodeURIComponent(org.id) + "/repos/" + encodeURIComponent(repo.id) + "/snapshots";
    return allPages(path, function (snapshots) {
      snapshots.forEach(function (s) {
        var restore = el("span");
        if (s.status === "ok") {
          var command = restoreCommand(s, repo);
          restore.appendChild(el("code", command));
          restore.appendChild(document.createTextNode(" "));
          restore.appendChild(copyButton(command));
        }
        body.appendChild(row([s.id, s.kind, status(s.status), when(s.finished_at), s.bytes, restore]));
      });
    });
  }

  function list(id, items, text) {
    var ul = $(id);
    ul.textContent = "";
    if (!items.length) ul.appendChild(el("li", "nothing", "note"));
    items.forEach(function (item) { ul.appendChild(text(item)); });
  }

  function loadActivity(org) {
    return api("GET", "/v1/orgs/" + encodeURIComponent(org.id) + "/activity?limit=20").then(function (page) {
      list("activity", page.items || [], function (a) {
        return el("li", when(a.created_at) + " · " + a.event + (a.detail ? " · " + (typeof a.detail === "string" ? a.detail : JSON.stringify(a.detail)) : ""));
      });
    });
  }

  function loadAccess(org) {
    return api("GET", "/v1/orgs/" + encodeURIComponent(org.id) + "/access").then(function (a) {
      var items = [
        (a.members || []).length + " members, " + (a.members || []).filter(function (m) { return m.admin; }).length + " admins",
        (a.outside_collaborators || []).length + " outside collaborators",
        (a.invitations || []).length + " pending invitations",
        "read " + when(a.read_at)
      ];
      (a.unknown || []).forEach(function (u) { items.push("unknown " + u.part + ": " + u.reason); });
      list("access", items, function (t) { return el("li", t); });
    }, function () { list("access", [], null); });
  }

  function loadPosture(org) {
    return api("GET", "/v1/orgs/" + encodeURIComponent(org.id) + "/posture").then(function (p) {
      list("posture", p.findings || [], function (f) {
        var li = el("li");
        li.appendChild(el("span", f.severity, "sev-" + f.severity));
        li.appendChild(document.createTextNode(" " + f.rule + (f.subject ? " · " + f.subject : "")));
        return li;
      });
    }, function () { list("posture", [], null); });
  }

  // ---- actions ----

  function act(label, method, suffix, body, describe) {
    if (!current) return Promise.resolve();
    clearError();
    $("org-result").textContent = label + "…";
    return api(method, "/v1/orgs/" + encodeURIComponent(current.id) + suffix, body).then(function (answer) {
      var id = current.id;
      return Promise.all([loadOrgs(), showOrg(id)]).then(function () {
        $("org-result").textContent = describe(answer);
      });
    }, function () { $("org-result").textContent = ""; });
  }

  $("sync").addEventListener("click", function () {
    act("Syncing", "POST", "/sync", undefined, function (r) {
      return "Sync: found " + r.found + ", added " + r.added + ", removed " + r.removed + (r.complete ? "" : " (continuing in the background)");
    });
  });
  $("backup").addEventListener("click", function () {
    act("Queueing backups", "POST", "/backup", undefined, function (r) { return "Backup: " + r.queued + " repositories queued"; });
  });
  $("disconnect").addEventListener("click", function () {
    if (!window.confirm("Disconnect " + current.login + "? Backups stop; snapshots are kept.")) return;
    act("Disconnecting", "POST", "/disconnect", undefined, function (r) {
      return "Disconnected: " + r.jobs_paused + " jobs paused, " + r.snapshots_kept + " snapshots kept";
    });
  });
  $("settings").addEventListener("submit", function (event) {
    event.preventDefault();
    var f = event.target.elements;
    var settings = {
      client: f.client.value.trim() === "" ? null : f.client.value.trim(),
      backup_schedule: f.backup_schedule.value,
      backup_hour: Number(f.backup_hour.value),
      retention_days: Number(f.retention_days.value)
    };
    act("Saving", "PATCH", "", settings, function () { return "Settings saved"; });
  });

  // Connect: the API answers where to send the browser (GitHub's install page, or the GitLab /
  // Microsoft sign-in); the provider sends it back to the gateway, which holds the connection
  // until the technician confirms it on the confirm page (or the portal's, with PORTAL_URL).
  Array.prototype.forEach.call(document.querySelectorAll("[data-connect]"), function (b) {
    b.addEventListener("click", function () {
      clearError();
      var provider = b.dataset.connect;
      var body = provider === "github" ? undefined : {};
      api("POST", "/v1/connect/" + provider, body).then(function (r) {
        location.assign(r.install_url || r.authorize_url);
      }, function () {});
    });
  });

  // ---- the token ----

  // The token's claims, for the header (not verified here: the gateway does that).
  function describeToken(t) {
    try {
      var claims = JSON.parse(atob(t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return "tenant " + claims.tid + (claims.sub ? " · " + claims.sub : "");
    } catch (e) {
      return "";
    }
  }

  function start(t) {
    token = t;
    sessionStorage.setItem(KEY, t);
    $("token").value = t;
    $("who").textContent = describeToken(t);
    $("main").hidden = false;
    return loadOrgs();
  }

  var fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromFragment) {
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    start($("token").value.trim());
  });
  $("filters").addEventListener("submit", function (event) {
    event.preventDefault();
    loadOrgs();
  });
  var saved = fromFragment || sessionStorage.getItem(KEY);
  if (saved) start(saved);
})();
