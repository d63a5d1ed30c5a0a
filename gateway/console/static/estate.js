/* Estate overview: device rows follow the feed's device messages; the 六有 checklist is refreshed from
   the server every 10 s (it is computed there, from the same state). */
"use strict";
(function () {
  const { data, t, fmtTime, api, feed } = window.EG;
  const estate = data.estate;
  const previous = new Map(); // device → the values of its last feed message

  function shown(value) {
    if (typeof value === "number" && !Number.isInteger(value)) return String(Number(value.toFixed(2)));
    return String(value);
  }

  function isSet(v) {
    return v === true || (typeof v === "number" && v !== 0) || data.fire_flags.includes(v);
  }

  function headline(family, values, before) {
    if (family === "fire_panel") {
      const counts = Object.fromEntries(data.fire_flags.map((f) => [f, 0]));
      for (const [point, value] of Object.entries(values)) {
        const flag = point.slice(point.lastIndexOf(".") + 1);
        if (flag in counts && isSet(value)) counts[flag] += 1;
        else if (flag === "state" && value in counts) counts[value] += 1;
      }
      return data.fire_flags.map((f) => [t("fire." + f), String(counts[f])]);
    }
    let points = (data.headline[family] || []).filter((p) => p in values);
    if (!points.length) {
      const changed = Object.keys(values).filter((p) => before[p] !== values[p]);
      points = changed.slice(-1);
    }
    return points.map((p) => [p, shown(values[p])]);
  }

  function deviceState(m) {
    const alarms = Array.isArray(m.alarms) ? m.alarms.length : Number(m.alarms || 0);
    if (alarms > 0) return "alarm";
    if (m.online === true) return "online";
    if (m.online === false) return "offline";
    return "unknown";
  }

  function updateDevice(m) {
    const tr = document.querySelector(`#devices tr[data-device="${CSS.escape(m.device)}"]`);
    if (!tr) return;
    const pill = tr.querySelector(".c-state .pill");
    const state = pill.className.includes("dstate-out_of_service") ? "out_of_service" : deviceState(m);
    pill.className = `pill dstate-${state}` + (state === "alarm" && m.priority ? ` prio-${m.priority}` : "");
    pill.textContent = t("dstate." + state);
    tr.className = `dev state-${state}`;
    // The feed sends every point's latest value: the row shows the family's headline points (as the
    // server renders them), fire panels the number of points in fire, fault, disabled.
    const values = m.values && typeof m.values === "object" ? m.values : {};
    const pairs = headline(data.families[m.device], values, previous.get(m.device) || {});
    previous.set(m.device, values);
    if (pairs.length) {
      const last = tr.querySelector(".c-last");
      last.textContent = "";
      for (const [label, value] of pairs) {
        const span = document.createElement("span");
        span.className = "kvp";
        const i = document.createElement("i");
        i.textContent = label;
        span.append(i, " " + value);
        last.append(span);
      }
    }
    if (m.ts) tr.querySelector(".c-time").textContent = fmtTime(m.ts, estate, false);
    tr.classList.add("flash");
    setTimeout(() => tr.classList.remove("flash"), 1000);
  }

  async function refreshFacilities() {
    const items = await api("GET", `/console/api/estates/${encodeURIComponent(estate)}/facilities`);
    for (const item of items) {
      const tile = document.querySelector(`.tile[data-key="${item.key}"]`);
      if (!tile) continue;
      tile.className = "tile " + (item.ok ? "ok" : "bad");
      const why = [];
      if (item.reason) why.push(t("reason." + item.reason));
      for (const d of item.devices) if (!d.ok) why.push(`${d.device}: ${t("reason." + d.reason)}`);
      tile.querySelector(".why").textContent = why.join(" ");
    }
  }

  feed({
    device(m) { if (m.estate === estate) updateDevice(m); },
    incident(m) { if (m.incident.estate === estate) refreshFacilities().catch(() => {}); },
    resync() { refreshFacilities().catch(() => {}); },
  });
  setInterval(() => refreshFacilities().catch(() => {}), 10000);
})();
