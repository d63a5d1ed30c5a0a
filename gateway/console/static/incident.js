/* Incident detail: the action forms post to the API (with the CSRF header); the page reloads to show
   the new state and timeline. A change made elsewhere (feed) reloads it too, unless a form is being
   filled in. */
"use strict";
(function () {
  const { data, t, api, toast, feed } = window.EG;
  const id = data.incident.id;

  function bodyOf(action, form) {
    const v = (name) => (form.elements[name] ? form.elements[name].value.trim() : "");
    switch (action) {
      case "ack": return { note: v("note") };
      case "assign": return { assignee: v("assignee") };
      case "comment": return { text: v("text") };
      case "shelve": return { minutes: Number(v("minutes")), reason: v("reason") };
      case "resolve": return { cause: v("cause"), note: v("note") };
      default: return undefined;
    }
  }

  for (const form of document.querySelectorAll("form.act")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const action = form.dataset.action;
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        await api("POST", `/incidents/${id}/${action}`, bodyOf(action, form));
        toast(t("toast.done"));
        location.reload();
      } catch (e) {
        toast(t("toast.failed", { detail: e.message }), true);
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  function editing() {
    return [...document.querySelectorAll("form.act input")].some((i) => i.value.trim() !== "");
  }

  feed({
    incident(m) {
      if (m.incident.id !== id || m.incident.updated_at <= data.incident.updated_at) return;
      if (editing()) toast(t("toast.changed_elsewhere")); else location.reload();
    },
  });
})();
