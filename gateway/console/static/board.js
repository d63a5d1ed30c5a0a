/* Live incident board: rows kept by id, sorted by priority then age, updated from the feed; a tone for
   new critical unacknowledged incidents (WebAudio, mute remembered); bulk acknowledge. */
"use strict";
(function () {
  const { data, t, fmtTime, fmtAge, api, toast, feed } = window.EG;
  const RANK = { critical: 0, high: 1, medium: 2, low: 3 };
  const filters = data.filters;
  const canAct = data.role !== "viewer" && data.role !== null;
  const items = new Map(data.incidents.map((i) => [i.id, i]));
  const rows = new Map(); // id → {el, sig}
  const selected = new Set();
  const body = document.getElementById("rows");

  function matches(i) {
    if (filters.estate && i.estate !== filters.estate) return false;
    if (filters.state === "active") return i.state === "open" || i.state === "acknowledged";
    return i.state === filters.state;
  }

  function cell(tr, cls, child) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (child instanceof Node) td.appendChild(child);
    else if (child !== undefined && child !== null) td.textContent = String(child);
    tr.appendChild(td);
    return td;
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function estateName(id) {
    return data.estates[id] ? data.estates[id].name : id;
  }

  function buildRow(i) {
    const tr = document.createElement("tr");
    const unacked = i.state === "open";
    tr.dataset.id = i.id;
    tr.className = `row prio-${i.priority} state-${i.state}` + (unacked ? " unacked" : "");
    let box = null;
    if (canAct) {
      box = document.createElement("input");
      box.type = "checkbox";
      box.className = "sel";
      box.value = i.id;
      box.checked = selected.has(i.id);
    }
    cell(tr, "c-sel", box);
    const badge = document.createElement("span");
    badge.className = `badge prio-${i.priority}` + (unacked && i.priority === "critical" ? " blink" : "");
    badge.textContent = t("priority." + i.priority);
    cell(tr, "", badge);
    cell(tr, "c-state", t("state." + i.state));
    cell(tr, "", estateName(i.estate));
    cell(tr, "", link(`/console/devices/${encodeURIComponent(i.estate)}/${encodeURIComponent(i.device)}`, i.device));
    const title = data.lang === "en" && i.title_en ? i.title_en : i.title;
    cell(tr, "c-title", link(`/console/incidents/${i.id}`, title));
    cell(tr, "c-time", fmtTime(i.opened_at, i.estate));
    cell(tr, "c-age", fmtAge(Date.now() / 1000 - i.opened_at)).dataset.ts = i.opened_at;
    cell(tr, "", i.escalation_level);
    cell(tr, "", i.acknowledged_by || "");
    let ack = null;
    if (canAct && unacked) {
      ack = document.createElement("button");
      ack.type = "button";
      ack.className = "btn small ack";
      ack.dataset.id = i.id;
      ack.textContent = t("action.ack");
    }
    cell(tr, "c-act", ack);
    return tr;
  }

  function render(fresh) {
    const shown = [...items.values()].filter(matches);
    shown.sort((a, b) => RANK[a.priority] - RANK[b.priority] || a.opened_at - b.opened_at || a.id - b.id);
    const keep = new Set(shown.map((i) => i.id));
    for (const [id, row] of rows) {
      if (!keep.has(id)) { row.el.remove(); rows.delete(id); selected.delete(id); }
    }
    let before = body.firstChild;
    for (const i of shown) {
      const sig = `${i.state}|${i.updated_at}|${i.escalation_level}|${i.acknowledged_by}|${selected.has(i.id)}`;
      let row = rows.get(i.id);
      if (!row || row.sig !== sig) {
        const el = buildRow(i);
        if (fresh && fresh.has(i.id)) el.classList.add("fresh");
        if (row) {
          if (before === row.el) before = el;
          row.el.replaceWith(el);
        }
        row = { el, sig };
        rows.set(i.id, row);
      }
      if (row.el !== before) body.insertBefore(row.el, before);
      before = row.el.nextSibling;
    }
    while (before) { const next = before.nextSibling; before.remove(); before = next; }
    counts(shown);
  }

  function counts(shown) {
    for (const el of document.querySelectorAll("#counts [data-priority]")) {
      el.querySelector("b").textContent = shown.filter((i) => i.priority === el.dataset.priority).length;
    }
    document.getElementById("unacked-count").textContent = shown.filter((i) => i.state === "open").length;
    document.getElementById("empty").hidden = shown.length > 0;
    const bulk = document.getElementById("bulk-ack");
    if (bulk) {
      document.getElementById("selected-count").textContent = selected.size;
      bulk.disabled = selected.size === 0;
    }
    document.title = `(${shown.filter((i) => i.state === "open").length}) ${t("board.title")} | ${t("app.name")}`;
  }

  // --- sound -------------------------------------------------------------------------------------------
  const muteButton = document.getElementById("mute");
  let muted = localStorage.getItem("eg_mute") === "1";
  let audio = null;
  function showMute() {
    muteButton.textContent = muted ? t("board.sound_off") : t("board.sound_on");
    muteButton.setAttribute("aria-pressed", String(muted));
    muteButton.classList.toggle("warn", muted);
  }
  muteButton.addEventListener("click", () => {
    muted = !muted;
    localStorage.setItem("eg_mute", muted ? "1" : "0");
    showMute();
    if (!muted) unlockAudio();
  });
  function unlockAudio() {
    try {
      audio = audio || new AudioContext();
      if (audio.state === "suspended") audio.resume();
    } catch (e) { audio = null; }
  }
  document.addEventListener("click", unlockAudio, { once: true }); // browsers start audio on a gesture
  function alarmTone() {
    document.body.dataset.tones = String(Number(document.body.dataset.tones || 0) + 1);
    if (muted) return;
    unlockAudio();
    if (!audio) return;
    const now = audio.currentTime;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.setValueAtTime(880, now);
    osc.frequency.setValueAtTime(660, now + 0.2);
    osc.frequency.setValueAtTime(880, now + 0.4);
    gain.gain.setValueAtTime(0.06, now);
    gain.gain.setValueAtTime(0, now + 0.6);
    osc.connect(gain).connect(audio.destination);
    osc.start(now);
    osc.stop(now + 0.62);
  }
  // Annunciation until acknowledged: a reminder tone while any critical incident stays unacknowledged.
  setInterval(() => {
    if ([...items.values()].some((i) => matches(i) && i.priority === "critical" && i.state === "open")) alarmTone();
  }, 20000);

  // --- actions -----------------------------------------------------------------------------------------
  function upsert(incident) { items.set(incident.id, incident); }

  async function ackOne(id) {
    upsert(await api("POST", `/incidents/${id}/ack`, { note: "" }));
  }

  async function ackMany(ids) {
    try {
      const reply = await api("POST", "/incidents/ack", { ids, note: "" });
      const failed = (reply.results || []).filter((r) => !["acknowledged", "already_acknowledged"].includes(r.outcome));
      if (failed.length) toast(t("toast.some_failed", { n: failed.length }), true);
    } catch (e) {
      if (![404, 405].includes(e.status)) throw e;
      for (const id of ids) await ackOne(id); // a server without the bulk route
    }
    await refetch(); // the bulk reply has outcomes only; the feed brings the same changes too
  }

  body.addEventListener("click", async (event) => {
    const target = event.target;
    if (target.classList.contains("ack")) {
      target.disabled = true;
      try { await ackOne(Number(target.dataset.id)); toast(t("toast.acked")); }
      catch (e) { toast(t("toast.failed", { detail: e.message }), true); target.disabled = false; }
      render();
    }
  });
  body.addEventListener("change", (event) => {
    const box = event.target;
    if (!box.classList.contains("sel")) return;
    if (box.checked) selected.add(Number(box.value)); else selected.delete(Number(box.value));
    render();
  });
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      selected.clear();
      if (all.checked) for (const i of items.values()) if (matches(i) && i.state === "open") selected.add(i.id);
      render();
    });
  }
  const bulk = document.getElementById("bulk-ack");
  if (bulk) {
    bulk.addEventListener("click", async () => {
      const ids = [...selected];
      bulk.disabled = true;
      try {
        await ackMany(ids);
        toast(t("toast.acked_n", { n: ids.length }));
        selected.clear();
        if (all) all.checked = false;
      }
      catch (e) { toast(t("toast.failed", { detail: e.message }), true); }
      render();
    });
  }
  for (const id of ["filter-estate", "filter-state"]) {
    document.getElementById(id).addEventListener("change", () => document.getElementById("filters").submit());
  }

  // --- live feed ---------------------------------------------------------------------------------------
  async function refetch() {
    const states = filters.state === "active" ? ["open", "acknowledged"] : [filters.state];
    const fresh = new Map();
    for (const state of states) {
      const params = new URLSearchParams({ state, limit: "500" });
      if (filters.estate) params.set("estate", filters.estate);
      for (const i of await api("GET", "/incidents?" + params)) fresh.set(i.id, i);
    }
    items.clear();
    for (const [id, i] of fresh) items.set(id, i);
    render();
  }

  feed({
    incident(m) {
      const i = m.incident;
      const known = items.get(i.id);
      if (known && known.updated_at > i.updated_at) return; // an older snapshot than the one we hold
      items.set(i.id, i);
      if (m.new && i.priority === "critical" && i.state === "open" && matches(i)) alarmTone();
      render(m.new ? new Set([i.id]) : undefined);
    },
    resync() { refetch().catch((e) => toast(t("toast.failed", { detail: e.message }), true)); },
  });

  setInterval(() => {
    const now = Date.now() / 1000;
    for (const el of body.querySelectorAll(".c-age")) el.textContent = fmtAge(now - Number(el.dataset.ts));
  }, 5000);

  showMute();
  render();
})();
