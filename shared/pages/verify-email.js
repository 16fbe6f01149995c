"use strict";
(function () {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const button = document.getElementById("confirm");
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
  button.addEventListener("click", async function () {
    button.disabled = true;
    show("Confirming...");
    try {
      const response = await fetch("auth/email/verify", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: token }),
      });
      if (response.ok) {
        show("Your email address is confirmed. You can close this page.", "done");
        return;
      }
      const problem = await response.json().catch(function () { return {}; });
      if (problem.code === "invalid_token") {
        show("This link has expired or was already used. Ask for a new one.", "error");
      } else if (problem.code === "email_taken") {
        show("That address now belongs to another account.", "error");
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
