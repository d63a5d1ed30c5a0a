/* Estate overview: record a maintenance duty as done (operator+). The server keeps who and when and
   writes the audit entry; the page reloads to show the new due date and the cleared alarm. */
"use strict";
(function () {
  const { data, t, api, toast } = window.EG;
  for (const form of document.querySelectorAll("form.record-duty")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      const path = `/maintenance/duties/${encodeURIComponent(data.estate)}/${encodeURIComponent(form.dataset.duty)}/complete`;
      try {
        await api("POST", path, { note: form.elements.note.value });
        toast(t("maint.recorded"));
        setTimeout(() => location.reload(), 600);
      } catch (err) {
        toast(err.message, true);
        button.disabled = false;
      }
    });
  }
})();
