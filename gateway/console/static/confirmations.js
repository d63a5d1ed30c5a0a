/* Device detail, two-person rule: the device's commands (a dangerous one answers 202 and waits), and the
   requests waiting for a second person with confirm / reject buttons (POST with the CSRF header through
   EG.api). The list is refreshed every 5 s while the page is open: the notice says how many wait. */
"use strict";
(function () {
  const { data, t, fmtTime, api, toast } = window.EG;
  const list = document.getElementById("pending-list");
  const none = document.getElementById("pending-none");
  const notice = document.getElementById("pending-notice");
  const form = document.getElementById("command-form");
  if (!list) return;

  function button(text, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn " + cls;
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  async function decide(request, verb, buttons) {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const done = await api("POST", `/commands/pending/${encodeURIComponent(request.id)}/${verb}`);
      toast(verb === "confirm" ? t("confirm.sent", { command: done.command, outcome: done.outcome })
        : t("confirm.rejected"));
    } catch (e) {
      toast(t("toast.failed", { detail: e.message }), true);
    }
    refresh();
  }

  function render(pending) {
    list.textContent = "";
    for (const p of pending) {
      const li = document.createElement("li");
      li.dataset.id = p.id;
      const text = document.createElement("span");
      text.textContent = t("confirm.asked", { command: p.command, who: p.requested_by, reason: p.reason }) + " · "
        + t("confirm.expires", { time: fmtTime(p.expires_at, data.estate, false) });
      li.append(text);
      if (data.can_confirm) {
        const buttons = [];
        if (p.requested_by !== data.me) {
          buttons.push(button(t("confirm.confirm"), "primary", () => decide(p, "confirm", buttons)));
        }
        buttons.push(button(t("confirm.reject"), "ghost", () => decide(p, "reject", buttons)));
        li.append(...buttons);
      }
      list.append(li);
    }
    none.hidden = pending.length > 0;
    notice.hidden = pending.length === 0;
    notice.textContent = t("confirm.notice", { n: pending.length });
  }

  async function refresh() {
    try {
      const all = await api("GET", `/commands/pending?estate=${encodeURIComponent(data.estate)}`);
      render(all.filter((p) => p.device === data.device));
    } catch (e) { /* the next round retries; a 401 already went to the login page */ }
  }

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { command: form.elements.command.value, reason: form.elements.reason.value.trim() };
      try {
        const reply = await api("POST", `/devices/${encodeURIComponent(data.estate)}/${encodeURIComponent(data.device)}/commands`, body);
        if (reply.state === "pending") {
          toast(t("confirm.requested", { command: reply.command, time: fmtTime(reply.expires_at, data.estate, false) }));
        } else {
          toast(t("confirm.sent", { command: reply.command, outcome: reply.outcome }));
        }
        form.reset();
      } catch (e) {
        toast(t("toast.failed", { detail: e.message }), true);
      }
      refresh();
    });
  }

  render(data.pending);
  setInterval(refresh, 5000);
})();
