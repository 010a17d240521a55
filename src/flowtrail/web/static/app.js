// flowtrail web UI: polls server-rendered fragments while the tab is visible, ticks
// relative times, and drives the trace tree from the keyboard. No build step.
"use strict";

(function () {
  const serverNow = Date.parse(document.body.dataset.now || "");
  const skew = isNaN(serverNow) ? 0 : serverNow - Date.now(); // server clock - ours

  function now() { return Date.now() + skew; }

  function fmtMs(ms) {
    if (ms < 1000) return Math.round(ms) + "ms";
    const s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(1).replace(/\.0$/, "") : Math.floor(s)) + "s";
    const whole = Math.floor(s), m = Math.floor(whole / 60), sec = whole % 60;
    if (m < 60) return m + "m" + String(sec).padStart(2, "0") + "s";
    const h = Math.floor(m / 60);
    if (h < 24) return h + "h" + String(m % 60).padStart(2, "0") + "m";
    return Math.floor(h / 24) + "d" + String(h % 24).padStart(2, "0") + "h";
  }

  function tick() {
    for (const el of document.querySelectorAll("[data-ago]")) {
      const t = Date.parse(el.dataset.ago);
      if (!isNaN(t)) el.textContent = fmtMs(Math.max(0, now() - t)) + " ago";
    }
    for (const el of document.querySelectorAll("[data-since]")) {
      const t = Date.parse(el.dataset.since);
      if (!isNaN(t)) el.textContent = fmtMs(Math.max(0, now() - t));
    }
  }

  // Poll `url` every `seconds` while the tab is visible; hand the parsed fragment to
  // `apply`. Stops for good once `active()` or `apply` returns false.
  function poller(url, seconds, active, apply, onUpdated) {
    let timer = null, stopped = false;
    async function once() {
      timer = null;
      if (stopped) return;
      if (!active()) { stopped = true; return; } // e.g. the run has ended: for good
      if (document.visibilityState === "visible") {
        try {
          const res = await fetch(url(), { headers: { Accept: "text/html" }, credentials: "same-origin" });
          if (res.ok) {
            const doc = new DOMParser().parseFromString(await res.text(), "text/html");
            if (apply(doc) === false) { stopped = true; }
            if (onUpdated) onUpdated(true);
          } else if (onUpdated) onUpdated(false);
        } catch (e) { if (onUpdated) onUpdated(false); }
      }
      if (!stopped) timer = setTimeout(once, seconds * 1000);
    }
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !stopped && timer !== null) {
        clearTimeout(timer); once();
      }
    });
    if (active()) timer = setTimeout(once, seconds * 1000);
    else stopped = true;
    return { stop() { stopped = true; if (timer) clearTimeout(timer); }, now: once };
  }

  // ---- runs list ---------------------------------------------------------------------
  function runsList() {
    const live = document.getElementById("live");
    if (!live) return;
    const form = document.getElementById("filters");
    if (form) form.addEventListener("submit", () => {
      for (const el of form.querySelectorAll("input, select")) if (!el.value) el.disabled = true;
    });
    const text = document.getElementById("live-text");
    let updated = Date.now();
    const on = live.dataset.on === "true";
    live.classList.toggle("off", !on);
    if (!on) return;
    setInterval(() => {
      if (live.dataset.failed) return;
      text.textContent = "live · updated " + fmtMs(Date.now() - updated).replace(/ms$/, "ms") + " ago";
    }, 1000);
    poller(() => live.dataset.url, Number(live.dataset.poll || 5), () => true, (doc) => {
      const target = document.getElementById("runs-live");
      target.replaceChildren(...doc.body.childNodes);
      tick();
    }, (ok) => {
      if (ok) { updated = Date.now(); delete live.dataset.failed; text.textContent = "live · updated just now"; }
      else { live.dataset.failed = "1"; text.textContent = "live · update failed, retrying"; }
    });
  }

  // ---- run page ------------------------------------------------------------------------
  function runPage() {
    const live = document.getElementById("run-live");
    if (!live) return;
    const runId = live.dataset.run;
    const storeKey = "flowtrail.collapsed." + runId;
    const collapsed = new Set(JSON.parse(sessionStorage.getItem(storeKey) || "[]"));
    let selected = null;

    function tree() { return document.getElementById("tree"); }
    function rows() { return tree() ? Array.from(tree().querySelectorAll("[role=treeitem]")) : []; }
    function rowOf(key) { return tree() ? tree().querySelector(`[role=treeitem][data-key="${CSS.escape(key)}"]`) : null; }
    let failuresOnly = false;
    function visible(r) { return r.getClientRects().length > 0; }

    function applyCollapse() {
      const hidden = new Set();
      for (const r of rows()) {
        const parent = r.dataset.parent;
        const hide = r.dataset.key !== "" && (hidden.has(parent) || collapsed.has(parent));
        r.hidden = hide;
        if (hide) hidden.add(r.dataset.key);
        if (r.hasAttribute("aria-expanded")) {
          const open = !collapsed.has(r.dataset.key);
          r.setAttribute("aria-expanded", open ? "true" : "false");
          const caret = r.querySelector(".caret");
          if (caret) caret.textContent = open ? "▾" : "▸";
        }
      }
      sessionStorage.setItem(storeKey, JSON.stringify(Array.from(collapsed)));
    }

    function select(row, { focus = true, open = false, scroll = true } = {}) {
      if (!row) return;
      for (const r of rows()) { r.setAttribute("aria-selected", "false"); r.tabIndex = -1; }
      // reveal it: expand every collapsed ancestor
      let p = row.dataset.parent, changed = false;
      while (p !== undefined && p !== null) {
        if (collapsed.delete(p)) changed = true;
        const pr = rowOf(p); if (!pr || p === "") break; p = pr.dataset.parent;
      }
      if (changed) applyCollapse();
      row.setAttribute("aria-selected", "true");
      row.tabIndex = 0;
      selected = row.dataset.key;
      if (focus) row.focus({ preventScroll: true });
      if (scroll) row.scrollIntoView({ block: "nearest" });
      if (open) showDetail(row);
    }

    async function showDetail(row) {
      const pane = document.getElementById("detail");
      if (row.dataset.href) { location.href = row.dataset.href; return; }
      const key = row.dataset.key;
      history.replaceState(null, "", "#span=" + key);
      const res = await fetch(`/fragments/runs/${encodeURIComponent(runId)}/span?key=${encodeURIComponent(key)}`, { credentials: "same-origin" });
      pane.innerHTML = await res.text();
      pane.dataset.key = key;
      pane.classList.add("has-span");
    }

    function closeDetail() {
      const pane = document.getElementById("detail");
      pane.innerHTML = '<p class="muted">Select a span (click, or <kbd>Enter</kbd>) to see its input, output and error.</p>';
      delete pane.dataset.key;
      pane.classList.remove("has-span");
      history.replaceState(null, "", location.pathname + location.search);
      const row = selected !== null ? rowOf(selected) : null;
      if (row) row.focus();
    }

    function jumpToError() {
      const body = document.getElementById("run-body");
      if (!body || !body.hasAttribute("data-error-key")) return;
      const row = rowOf(body.dataset.errorKey);
      if (row) select(row, { open: true });
    }

    function fromHash() {
      const m = /^#span=(.*)$/.exec(location.hash);
      if (!m) return false;
      const row = rowOf(decodeURIComponent(m[1]));
      if (row) { select(row, { open: true }); return true; }
      return false;
    }

    function applyFailures() {
      if (tree()) tree().classList.toggle("failures-only", failuresOnly);
      const btn = document.querySelector('[data-tree="failures"]');
      if (btn) btn.setAttribute("aria-pressed", failuresOnly ? "true" : "false");
    }

    function wire() {
      applyCollapse();
      applyFailures();
      const t = tree();
      if (!t) return;
      t.addEventListener("click", (ev) => {
        const row = ev.target.closest("[role=treeitem]");
        if (!row || ev.target.closest("a")) return;
        if (ev.target.closest(".caret") && row.hasAttribute("aria-expanded")) {
          toggle(row); return;
        }
        select(row, { open: true });
      });
      t.addEventListener("focus", (ev) => {
        if (ev.target === t) {
          const row = (selected !== null && rowOf(selected)) || rows().find(visible);
          if (row) select(row);
        }
      });
      if (selected !== null && rowOf(selected)) {
        const row = rowOf(selected);
        row.setAttribute("aria-selected", "true"); row.tabIndex = 0;
      }
    }

    function toggle(row, open) {
      const key = row.dataset.key;
      const want = open === undefined ? collapsed.has(key) : open;
      if (want) collapsed.delete(key); else collapsed.add(key);
      applyCollapse();
    }

    document.addEventListener("keydown", (ev) => {
      const typing = ev.target.closest && ev.target.closest("input, textarea, select, [contenteditable]");
      if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (ev.key === "e") { ev.preventDefault(); jumpToError(); return; }
      if (ev.key === "Escape") { closeDetail(); return; }
      const inTree = ev.target.closest && ev.target.closest("#tree");
      if (!inTree) return;
      const all = rows().filter(visible);
      const current = selected !== null ? rowOf(selected) : null;
      const i = current ? all.indexOf(current) : -1;
      if (ev.key === "ArrowDown" || ev.key === "j") { ev.preventDefault(); select(all[Math.min(all.length - 1, i + 1)]); }
      else if (ev.key === "ArrowUp" || ev.key === "k") { ev.preventDefault(); select(all[Math.max(0, i - 1)]); }
      else if (ev.key === "Home") { ev.preventDefault(); select(all[0]); }
      else if (ev.key === "End") { ev.preventDefault(); select(all[all.length - 1]); }
      else if (ev.key === "ArrowRight" && current) {
        ev.preventDefault();
        if (current.getAttribute("aria-expanded") === "false") toggle(current, true);
        else if (current.hasAttribute("aria-expanded")) select(all[i + 1]);
      } else if (ev.key === "ArrowLeft" && current) {
        ev.preventDefault();
        if (current.getAttribute("aria-expanded") === "true") toggle(current, false);
        else if (current.dataset.parent !== undefined && current.dataset.key !== "") select(rowOf(current.dataset.parent));
      } else if ((ev.key === "Enter" || ev.key === " ") && current) { ev.preventDefault(); showDetail(current); }
    });

    document.addEventListener("click", (ev) => {
      const btn = ev.target.closest("[data-tree]");
      if (btn && btn.dataset.tree === "failures") {
        failuresOnly = !failuresOnly;
        applyFailures();
      } else if (btn) {
        if (btn.dataset.tree === "collapse") { for (const r of rows()) if (r.hasAttribute("aria-expanded") && r.dataset.key !== "") collapsed.add(r.dataset.key); }
        else collapsed.clear();
        applyCollapse();
      }
      if (ev.target.closest("[data-close]")) closeDetail();
      const link = ev.target.closest('a[href^="#span="]');
      if (link) {
        ev.preventDefault();
        const row = rowOf(decodeURIComponent(link.getAttribute("href").slice(6)));
        if (row) select(row, { open: true });
      }
    });
    window.addEventListener("hashchange", fromHash);

    // ---- actions (operator tokens only; the JSON API decides) ----
    async function act(action, body) {
      const msg = document.getElementById("action-msg");
      if (msg) msg.textContent = action + "…";
      let res, data = {};
      try {
        res = await fetch(`/api/v1/runs/${encodeURIComponent(runId)}/${action}`, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body || {}),
        });
        data = await res.json().catch(() => ({}));
      } catch (e) { if (msg) msg.textContent = action + " failed: " + e; return; }
      if (!res.ok) {
        if (msg) { msg.textContent = (data.title || res.statusText) + (data.detail ? ": " + data.detail : ""); msg.className = "err"; }
        return;
      }
      if (action === "retry") {
        const where = /\/runs\/([^/?#]+)$/.exec(res.headers.get("Location") || "");
        const next = data.id || data.run_id || (data.run && data.run.id) || (where && where[1]);
        if (next) { location.href = "/runs/" + encodeURIComponent(next); return; }
      }
      if (msg) { msg.textContent = data.message || (action + " requested"); msg.className = "ok"; }
      refresh.now();
    }

    document.addEventListener("click", (ev) => {
      const b = ev.target.closest("[data-action]");
      if (!b) return;
      if (b.dataset.action === "cancel" && !confirm("Cancel this run?")) return;
      act(b.dataset.action, b.dataset.action === "retry" ? { from_block: null } : {});
    });
    document.addEventListener("submit", (ev) => {
      if (ev.target.id !== "resume-form") return;
      ev.preventDefault();
      const form = ev.target;
      const raw = form.elements.__json.value.trim();
      let input;
      if (raw) {
        try { input = JSON.parse(raw); } catch (e) {
          const msg = document.getElementById("action-msg");
          msg.textContent = "The input is not JSON: " + e.message; msg.className = "err"; return;
        }
      } else {
        input = {};
        for (const el of form.querySelectorAll("[data-field]")) {
          if (el.value === "") continue;
          try { input[el.dataset.field] = JSON.parse(el.value); } catch (e) { input[el.dataset.field] = el.value; }
        }
        if (!Object.keys(input).length) input = null;
      }
      act("resume", { input });
    });

    const STATUS_COLOURS = {
      queued: "#64748b", running: "#2563eb", paused: "#7c3aed", completed: "#15803d",
      failed: "#dc2626", cancelled: "#6b7280", crashed: "#9a3412",
    };

    function setTitle(body) {
      if (!body) return;
      if (body.dataset.title) document.title = body.dataset.title + " · flowtrail";
      // the tab's icon takes the run's status colour too
      const colour = STATUS_COLOURS[body.dataset.status];
      const icon = document.querySelector('link[rel="icon"]');
      if (colour && icon) {
        const svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">' +
          '<circle cx="8" cy="8" r="7" fill="' + colour + '"/></svg>';
        icon.href = "data:image/svg+xml," + encodeURIComponent(svg);
      }
    }

    const refresh = poller(() => live.dataset.url, Number(live.dataset.poll || 2),
      () => live.dataset.terminal !== "true",
      (doc) => {
        const fresh = doc.getElementById("run-body");
        const body = document.getElementById("run-body");
        if (!fresh || !body) return true;
        const resumeOpen = document.querySelector("#resume[open]");
        for (const id of ["card", "actions", "fall"]) {
          if (id === "actions" && resumeOpen) continue;
          const mine = document.getElementById(id), theirs = fresh.querySelector("#" + id);
          if (mine && theirs) mine.replaceWith(theirs);
        }
        body.dataset.terminal = fresh.dataset.terminal;
        if (fresh.hasAttribute("data-error-key")) body.dataset.errorKey = fresh.dataset.errorKey;
        else body.removeAttribute("data-error-key");
        body.dataset.title = fresh.dataset.title;
        body.dataset.status = fresh.dataset.status;
        live.dataset.terminal = fresh.dataset.terminal;
        setTitle(body);
        wire();
        tick();
        const pane = document.getElementById("detail");
        if (pane.dataset.key !== undefined) {
          const row = rowOf(pane.dataset.key);
          if (row) showDetail(row);
        }
        return fresh.dataset.terminal !== "true";
      });

    setTitle(document.getElementById("run-body"));
    wire();
    if (!fromHash()) {
      const body = document.getElementById("run-body");
      if (body.hasAttribute("data-error-key")) {
        const row = rowOf(body.dataset.errorKey);
        if (row) select(row, { open: true, focus: false, scroll: false });
      }
    }
  }

  function login() {
    const form = document.getElementById("token-form");
    if (!form) return;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      document.cookie = "flowtrail_token=" + encodeURIComponent(form.elements.token.value) + "; path=/; SameSite=Strict";
      location.reload();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    tick();
    setInterval(tick, 1000);
    runsList();
    runPage();
    login();
  });
})();
