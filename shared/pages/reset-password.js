"use strict";
(function () {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const form = document.getElementById("reset");
  const input = document.getElementById("password");
  const button = document.getElementById("submit");
  const status = document.getElementById("status");
  function show(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }
  if (!token) {
    button.disabled = true;
    show("This link is incomplete. Open the link from the email again.", "error");
    return;
  }
  // The token leaves the address bar and the history; it stays in this page only.
  history.replaceState(null, "", location.pathname + location.search);
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    show("Saving...");
    try {
      const response = await fetch("auth/password/reset", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: token, password: input.value }),
      });
      if (response.status === 204) {
        form.hidden = true;
        show("Your password was changed and every session was signed out. Sign in with the new password.", "done");
        return;
      }
      const problem = await response.json().catch(function () { return {}; });
      if (problem.code === "weak_password") {
        const reasons = (problem.errors || []).map(function (e) { return e.message; });
        show("Please choose a stronger password. " + reasons.join(" "), "error");
        button.disabled = false;
        input.focus();
      } else if (problem.code === "invalid_token") {
        show("This link has expired or was already used. Ask for a new one.", "error");
      } else {
        show(problem.detail || "Something went wrong. Please try again.", "error");
        button.disabled = false;
      }
    } catch (e) {
      show("The service could not be reached. Please try again.", "error");
      button.disabled = false;
    }
  });
})();
