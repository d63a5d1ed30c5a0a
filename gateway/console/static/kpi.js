/* KPI page: GET /kpis?estate=&period= (rates in %, times in s) as tiles grouped like the monthly
   assessment; the report (每月考核) opens from GET /estates/{id}/report?month=&format=html&lang=. */
"use strict";
(function () {
  const { data, t, api, fmtTime, fmtAge, feed } = window.EG;
  const estateSelect = document.getElementById("kpi-estate");
  const periodSelect = document.getElementById("kpi-period");
  const monthInput = document.getElementById("kpi-month");
  const report = document.getElementById("kpi-report");
  const box = document.getElementById("kpis");
  const PRIORITY = /^(.*)_(critical|high|medium|low)(_p90)?$/;
  const HIGHER_IS_BETTER = ["equipment_intact_rate", "fire_intact_rate", "septic_intact_rate",
    "generator_readiness", "on_time_response_rate", "repair_timeliness_rate"];

  function thisMonth() {
    const d = new Date();
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
  }

  /* mtta_s_critical_p90 → base mtta_s_p90 and priority critical. */
  function split(key) {
    const m = PRIORITY.exec(key);
    return m ? [m[1] + (m[3] || ""), m[2]] : [key, null];
  }

  function nameOf(key) {
    const [base, priority] = split(key);
    const k = "kpi.name." + base;
    const text = t(k) === k ? base : t(k);
    return priority ? `${text} · ${t("priority." + priority)}` : text;
  }

  function fmtValue(key, value) {
    if (value === null || value === undefined) return "—";
    const unit = data.units[split(key)[0]] || "";
    if (unit === "%") return value.toFixed(1) + "%";
    if (unit === "s") return value < 60 ? t("kpi.seconds", { n: value.toFixed(1) }) : fmtAge(value);
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }

  function grade(key, value) {
    if (!HIGHER_IS_BETTER.includes(key)) return "";
    return value >= 98 ? "good" : value >= 90 ? "warn" : "bad";
  }

  function tile(key, value) {
    const el = document.createElement("div");
    el.className = "kpi";
    el.dataset.kpi = key;
    const n = document.createElement("div");
    n.className = "name";
    n.textContent = nameOf(key);
    const v = document.createElement("div");
    v.className = "value " + grade(key, value);
    v.textContent = fmtValue(key, value);
    el.append(n, v);
    return el;
  }

  function heading(text) {
    const h = document.createElement("h2");
    h.className = "kpi-section";
    h.textContent = text;
    return h;
  }

  function render(set) {
    box.textContent = "";
    const range = document.createElement("p");
    range.className = "muted kpi-range";
    range.textContent = `${set.label} · ` + t("kpi.range", {
      start: fmtTime(set.start, set.estate), end: fmtTime(set.end, set.estate) }) + ` · ${t("kpi.target_hint")}`;
    box.append(range);
    const placed = new Set();
    const groups = data.sections.map(([section, names]) => {
      const keys = Object.keys(set.values).filter((k) => names.includes(split(k)[0]));
      keys.sort((a, b) => names.indexOf(split(a)[0]) - names.indexOf(split(b)[0]));
      keys.forEach((k) => placed.add(k));
      return ["kpi.section." + section, keys];
    });
    groups.push(["kpi.section.other", Object.keys(set.values).filter((k) => !placed.has(k))]);
    for (const [label, keys] of groups) {
      if (!keys.length) continue;
      box.append(heading(t(label)));
      for (const k of keys) box.append(tile(k, set.values[k]));
    }
  }

  let loading = false;
  async function load() {
    const estate = estateSelect.value;
    if (!estate) { box.textContent = t("kpi.none"); return; }
    if (loading) return;
    loading = true;
    try {
      const sets = await api("GET", "/kpis?" + new URLSearchParams({ estate, period: periodSelect.value }));
      if (sets.length) render(sets[0]); else box.textContent = t("kpi.none");
    } catch (e) {
      box.textContent = t("toast.failed", { detail: e.message });
    } finally {
      loading = false;
    }
  }

  function updateReport() {
    const params = new URLSearchParams({ month: monthInput.value || thisMonth(), format: "html", lang: data.lang });
    report.href = `/estates/${encodeURIComponent(estateSelect.value)}/report?${params}`;
  }

  monthInput.value = thisMonth();
  estateSelect.addEventListener("change", () => { updateReport(); load(); });
  periodSelect.addEventListener("change", load);
  monthInput.addEventListener("change", updateReport);
  updateReport();
  load();
  setInterval(load, 30000);
  let pending = null;
  feed({ // an incident of this estate changes MTTA, counts...: refresh, at most every 5 s
    incident(m) {
      if (m.incident.estate !== estateSelect.value || pending) return;
      pending = setTimeout(() => { pending = null; load(); }, 5000);
    },
  });
})();
