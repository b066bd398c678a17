// keel's web UI script: live updates (server-sent events), the tree's filters and its
// virtualised list, following logs, the terminal, and the actions an admin may take.
// Pages are whole without it; no inline script anywhere (the CSP forbids it), so this
// file wires itself to the page by element ids and data attributes.
"use strict";

(() => {
  const csrf = () => document.querySelector('meta[name="keel-csrf"]')?.content || "";

  // A failed answer's message: the server answers with a Kubernetes Status or {"error"}.
  async function errorText(response) {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      return body.message || body.error || text;
    } catch {
      return text || `${response.status} ${response.statusText}`;
    }
  }

  // Set once the viewer signs out: a refresh started after that would only be refused.
  let leaving = false;
  const followers = [];
  document.querySelector("form.logout")?.addEventListener("submit", () => {
    leaving = true;
    for (const stop of followers) stop();
  });

  // Calls `onChange` (debounced) whenever the server says the cluster or sync changed;
  // `only` limits it to some of what an event names ("status", "nodes", "objects").
  function onServerChange(onChange, wait, stateElement, only) {
    if (!window.EventSource) return;
    let timer = null;
    const source = new EventSource("/ui/live");
    followers.push(() => {
      clearTimeout(timer);
      source.close();
    });
    const fire = () => {
      clearTimeout(timer);
      if (!leaving) timer = setTimeout(onChange, wait);
    };
    source.addEventListener("changed", (e) => {
      if (!only || String(e.data).split(" ").some((what) => only.includes(what))) fire();
    });
    source.addEventListener("open", () => {
      if (stateElement) stateElement.textContent = "Live: this page follows the cluster.";
      fire(); // catch up on what happened while disconnected
    });
    source.addEventListener("error", () => {
      if (stateElement) stateElement.textContent = "Live updates paused; reconnecting…";
    });
  }

  // Parts of a page rendered by the server again when something changes.
  function live() {
    const target = document.querySelector("[data-live]");
    if (!target) return;
    let running = false;
    let again = false;
    let shown = "";
    const refresh = async () => {
      if (leaving) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        const response = await fetch(target.dataset.live, { headers: { accept: "text/html" } });
        if (response.status === 401) {
          location.assign("/ui/login");
          return;
        }
        if (response.ok) {
          const html = await response.text();
          // Unchanged HTML is not put in again (keyboard focus stays where it is).
          if (html !== shown) {
            shown = html;
            target.innerHTML = html; // server-rendered and escaped
          }
        }
      } catch {
        // The event stream reports the connection; the next event refreshes.
      } finally {
        running = false;
        if (again) {
          again = false;
          refresh();
        }
      }
    };
    onServerChange(refresh, 100, document.getElementById("live-state"));
  }

  function objectHref(kind, namespace, name) {
    const part = encodeURIComponent;
    return `/ui/objects/${part(kind)}/${part(namespace || "-")}/${part(name)}`;
  }

  // `key=value` or `key` (present) against a row's labels.
  function labelMatches(labels, wanted) {
    return wanted
      .split(",")
      .map((w) => w.trim())
      .filter(Boolean)
      .every((w) => (w.includes("=") ? labels.includes(w) : labels.some((l) => l.split("=")[0] === w)));
  }

  function tree() {
    const box = document.getElementById("tree");
    if (!box) return;
    const space = document.getElementById("tree-space");
    const count = document.getElementById("tree-count");
    const form = document.getElementById("tree-filters");
    const ROW = 28;
    let rows = [];
    let shown = [];
    // Filters may come in the address (?kind=Deployment&q=web), for links.
    const asked = new URLSearchParams(location.search);
    for (const element of form.elements) {
      if (element.name && asked.has(element.name)) element.value = asked.get(element.name);
    }

    // A row shows when it matches, when a row above it in its branch matches (its
    // subtree comes along), or when a row below it does (its ancestors show the way).
    function filter() {
      const f = new FormData(form);
      const kind = f.get("kind");
      const namespace = f.get("namespace");
      const health = f.get("health");
      const label = String(f.get("label") || "").trim();
      const query = String(f.get("q") || "").trim().toLowerCase();
      const matches = (r) =>
        (!namespace || r.ns === namespace) &&
        (!health || r.h === health) &&
        (!label || labelMatches(r.l, label)) &&
        (!query || r.n.toLowerCase().includes(query) || r.k.toLowerCase() === query);
      const keep = new Uint8Array(rows.length);
      const path = [];
      let rootKept = true;
      let subtreeOf = -1;
      rows.forEach((r, i) => {
        if (r.d === 0) {
          rootKept = !kind || r.k === kind;
          subtreeOf = -1;
        }
        path.length = r.d;
        path.push(i);
        if (!rootKept) return;
        if (subtreeOf >= 0 && r.d > subtreeOf) {
          keep[i] = 1;
          return;
        }
        subtreeOf = -1;
        if (matches(r)) {
          subtreeOf = r.d;
          for (const a of path) keep[a] = 1;
        }
      });
      shown = [];
      keep.forEach((k, i) => k && shown.push(i));
      const pods = shown.filter((i) => rows[i].k === "Pod").length;
      count.textContent = `${shown.length} of ${rows.length} rows shown (${pods} pods)`;
    }

    // Only the rows in view (and a few either side) are in the document.
    function draw() {
      space.style.height = `${shown.length * ROW}px`;
      const first = Math.max(0, Math.floor(box.scrollTop / ROW) - 10);
      const last = Math.min(shown.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW) + 10);
      const fragment = document.createDocumentFragment();
      for (let j = first; j < last; j++) {
        const r = rows[shown[j]];
        const row = document.createElement("div");
        row.className = "tree-row";
        row.setAttribute("role", "treeitem");
        row.setAttribute("aria-level", String(r.d + 1));
        row.dataset.kind = r.k;
        row.dataset.name = r.n;
        row.dataset.health = r.h;
        row.style.top = `${j * ROW}px`;
        row.style.paddingLeft = `${0.5 + r.d * 1.5}rem`;
        const badge = document.createElement("span");
        badge.className = `badge h-${r.h.toLowerCase()}`;
        badge.textContent = r.h;
        const kind = document.createElement("span");
        kind.className = "kind";
        kind.textContent = r.k;
        const link = document.createElement("a");
        link.href = objectHref(r.k, r.ns, r.n);
        link.textContent = r.ns ? `${r.ns}/${r.n}` : r.n;
        const status = document.createElement("span");
        status.className = "status";
        status.textContent = r.s;
        row.append(badge, kind, link, status);
        fragment.append(row);
      }
      space.replaceChildren(fragment);
    }

    async function load() {
      const response = await fetch(box.dataset.source, { headers: { accept: "application/json" } });
      if (!response.ok) {
        count.textContent = `Cannot load the tree: ${await errorText(response)}`;
        return;
      }
      rows = await response.json();
      filter();
      draw();
    }

    let frame = 0;
    box.addEventListener("scroll", () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(draw);
    });
    form.addEventListener("input", () => {
      filter();
      box.scrollTop = 0;
      draw();
    });
    form.addEventListener("submit", (e) => e.preventDefault());
    load();
    // Every row again, so not for node heartbeats, and at most every 2 s.
    onServerChange(load, 2000, null, ["objects"]);
  }

  // Appends to a <pre>, keeping it at the bottom when it was, and its size bounded.
  function appender(out) {
    const LIMIT = 2_000_000;
    return (text) => {
      const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
      out.append(text);
      if (out.textContent.length > LIMIT) out.textContent = out.textContent.slice(-LIMIT / 2);
      if (atBottom) out.scrollTop = out.scrollHeight;
    };
  }

  function logs() {
    const form = document.getElementById("logs-form");
    if (!form) return;
    const out = document.getElementById("logs");
    const append = appender(out);
    let controller = null;
    async function start() {
      controller?.abort();
      controller = new AbortController();
      out.textContent = "";
      const f = new FormData(form);
      const query = new URLSearchParams({ container: f.get("container") || "", tailLines: "1000" });
      if (f.get("follow")) query.set("follow", "true");
      try {
        const response = await fetch(`${form.dataset.url}?${query}`, { signal: controller.signal });
        if (!response.ok) {
          append(await errorText(response));
          return;
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          append(decoder.decode(value, { stream: true }));
        }
        if (f.get("follow")) append("\n(the log stream ended)\n");
      } catch (e) {
        if (e.name !== "AbortError") append(`\n(${e.message})\n`);
      }
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      start();
    });
    start();
  }

  // A line-at-a-time terminal over Kubernetes' exec channel (v5.channel.k8s.io): byte 0 is
  // the channel (0 stdin, 1 stdout, 2 stderr, 3 the exit status).
  function terminal() {
    const form = document.getElementById("term-form");
    if (!form) return;
    const out = document.getElementById("term-out");
    const input = document.getElementById("term-input");
    const append = appender(out);
    let socket = null;
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      socket?.close();
      out.textContent = "";
      const f = new FormData(form);
      const query = new URLSearchParams({ container: f.get("container") || "", stdin: "true", stdout: "true", stderr: "true" });
      for (const word of String(f.get("command") || "sh").split(/\s+/).filter(Boolean)) query.append("command", word);
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(`${scheme}//${location.host}${form.dataset.url}?${query}`, ["v5.channel.k8s.io", "v4.channel.k8s.io"]);
      socket.binaryType = "arraybuffer";
      socket.addEventListener("open", () => {
        append("(connected; type a command below)\n");
        input.hidden = false;
        input.elements.line.focus();
      });
      socket.addEventListener("message", (m) => {
        const bytes = new Uint8Array(m.data);
        if (bytes.length === 0) return;
        const text = decoder.decode(bytes.subarray(1));
        if (bytes[0] === 3) {
          try {
            const status = JSON.parse(text);
            append(`\n(${status.status === "Success" ? "exited 0" : status.message || "ended"})\n`);
          } catch {
            append(`\n(${text})\n`);
          }
        } else {
          append(text);
        }
      });
      socket.addEventListener("close", () => {
        append("\n(disconnected)\n");
        input.hidden = true;
      });
    });
    input.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      const line = `${input.elements.line.value}\n`;
      append(`$ ${line}`);
      const bytes = encoder.encode(line);
      const message = new Uint8Array(bytes.length + 1);
      message.set(bytes, 1);
      socket.send(message);
      input.elements.line.value = "";
    });
  }

  // Restart a pod, cordon a node: a request with the session's CSRF token.
  function actions() {
    for (const form of document.querySelectorAll("form[data-action]")) {
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
        const result = form.querySelector(".action-result");
        const init = { method: form.dataset.method, headers: { "X-Keel-CSRF": csrf() } };
        if (form.dataset.body) {
          init.body = form.dataset.body;
          init.headers["Content-Type"] = "application/merge-patch+json";
        }
        const response = await fetch(form.dataset.url, init);
        result.textContent = response.ok ? "Done." : await errorText(response);
        if (response.ok) setTimeout(() => location.reload(), 700);
      });
    }
  }

  live();
  tree();
  logs();
  terminal();
  actions();
})();
