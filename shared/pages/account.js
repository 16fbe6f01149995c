"use strict";
// The account page. Tokens live in this script's memory only: a reload signs out. The one
// exception is linking a provider, when the tab leaves for the provider and comes back: the
// access token waits in sessionStorage for that round trip, and is taken out on the way back.
(function () {
  const $ = function (id) { return document.getElementById(id); };
  const status = $("status");
  // What a tab keeps in sessionStorage while it is at a provider.
  const PENDING = "oidc-pending";
  let access = null;
  let mfaToken = null;
  // The OpenID providers, as GET /auth/oidc/providers lists them.
  let providers = [];

  function show(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }

  // Calls the API; the answer's JSON (or null), or throws the problem's detail (with its code).
  async function api(method, path, body, bearer) {
    const headers = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (bearer !== false && access) headers.authorization = "Bearer " + access;
    let response;
    try {
      response = await fetch(path, {
        method: method,
        headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Error("The service could not be reached. Please try again.");
    }
    const json = response.status === 204 ? null : await response.json().catch(function () { return null; });
    if (!response.ok) {
      if (response.status === 401 && json && json.message === "Unauthorized") signedOut();
      const error = new Error((json && (json.detail || json.message)) || "Something went wrong.");
      error.code = json && json.code;
      throw error;
    }
    return json;
  }

  // Runs `work`, its outcome in the status line.
  async function report(work) {
    show("Working...");
    try {
      const done = await work();
      show(done || "Done.", "done");
    } catch (e) {
      show(e.message, "error");
    }
  }

  // Runs `work` for a form or button: one request at a time, its outcome in the status line.
  function act(element, work) {
    const form = element.tagName === "FORM";
    element.addEventListener(form ? "submit" : "click", async function (event) {
      event.preventDefault();
      const buttons = (form ? element : element.form || document).querySelectorAll("button");
      buttons.forEach(function (b) { b.disabled = true; });
      try {
        await report(work);
      } finally {
        buttons.forEach(function (b) { b.disabled = false; });
      }
    });
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "never";
  }

  function item(text, buttons) {
    const li = document.createElement("li");
    const span = document.createElement("span");
    span.textContent = text;
    li.appendChild(span);
    buttons.forEach(function (b) { li.appendChild(b); });
    return li;
  }

  function button(label, work) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.textContent = label;
    act(b, work);
    return b;
  }

  function signedOut() {
    access = null;
    mfaToken = null;
    $("signed-in").hidden = true;
    $("signed-out").hidden = false;
    $("password-sign-in").hidden = false;
    $("provider-sign-in").hidden = false;
    $("second-factor").hidden = true;
  }

  async function signedIn(tokens) {
    if (tokens.mfa_required) {
      mfaToken = tokens.mfa_token;
      $("password-sign-in").hidden = true;
      $("provider-sign-in").hidden = true;
      $("second-factor").hidden = false;
      $("second-factor-passkey").hidden = tokens.methods.indexOf("passkey") < 0;
      $("code").focus();
      return "Enter the code from your authenticator app.";
    }
    access = tokens.access_token;
    mfaToken = null;
    $("password").value = "";
    $("code").value = "";
    $("signed-out").hidden = true;
    $("signed-in").hidden = false;
    await refresh();
    $("sign-out").focus();
    return "You are signed in.";
  }

  async function refresh() {
    const me = (await api("GET", "auth/me")).user;
    $("who").textContent = me.email;
    $("verified").textContent = me.email_verified ? "(address verified)" : "(address not verified yet)";
    $("resend-verification").hidden = me.email_verified;
    $("totp-state").textContent = me.mfa_enabled
      ? "On: signing in with the password also asks for a code. Recovery codes left: " + me.recovery_codes_left + "."
      : "Off.";
    $("totp-setup").hidden = me.mfa_enabled;
    $("totp-manage").hidden = !me.mfa_enabled;
    if (me.mfa_enabled) $("totp-confirm").hidden = true;

    const sessions = (await api("GET", "auth/sessions")).sessions;
    $("sessions").replaceChildren.apply($("sessions"), sessions.map(function (s) {
      const label = (s.current ? "This session" : "Another session") + ", signed in " + when(s.created_at) + ", last used " + when(s.last_used_at);
      const end = s.current ? [] : [button("End this session", async function () {
        await api("DELETE", "auth/sessions/" + s.id);
        await refresh();
        return "The session was ended.";
      })];
      return item(label, end);
    }));

    const passkeys = (await api("GET", "auth/passkeys")).passkeys;
    $("passkeys").replaceChildren.apply($("passkeys"), passkeys.map(function (p) {
      const rename = button("Rename", async function () {
        const name = window.prompt("New name", p.name);
        if (!name) return "Nothing changed.";
        await api("PATCH", "auth/passkeys/" + encodeURIComponent(p.id), { name: name });
        await refresh();
        return "The passkey was renamed.";
      });
      const remove = button("Remove " + p.name, async function () {
        const password = $("passkey-password").value;
        await api("DELETE", "auth/passkeys/" + encodeURIComponent(p.id), password ? { password: password } : {});
        await refresh();
        return "The passkey was removed.";
      });
      return item(p.name + " (added " + when(p.created_at) + ", last used " + when(p.last_used_at) + ")", [rename, remove]);
    }));

    if (providers.length) await listIdentities();
  }

  async function listIdentities() {
    const identities = (await api("GET", "auth/identities")).identities;
    $("identities").replaceChildren.apply($("identities"), identities.map(function (i) {
      const name = providerName(i.provider);
      const unlink = button("Unlink " + name, async function () {
        try {
          await api("DELETE", "auth/identities/" + encodeURIComponent(i.id));
        } catch (e) {
          if (e.code !== "last_credential") throw e;
          throw new Error("This is your only way to sign in; add a passkey first.");
        }
        await refresh();
        return "Unlinked " + name + ".";
      });
      const address = i.email ? " (" + i.email + ")" : "";
      return item(name + address + ", linked " + when(i.linked_at) + ", last used " + when(i.last_used_at), [unlink]);
    }));
  }

  function providerName(id) {
    const found = providers.filter(function (p) { return p.id === id; })[0];
    return found ? found.name : id;
  }

  // PKCE (RFC 7636): a random verifier, base64url, and its S256 challenge.
  function base64url(bytes) {
    let binary = "";
    bytes.forEach(function (b) { binary += String.fromCharCode(b); });
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomToken() {
    return base64url(crypto.getRandomValues(new Uint8Array(32)));
  }

  async function challengeOf(verifier) {
    const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    return base64url(new Uint8Array(hash));
  }

  // Where the provider's answer comes back: this page.
  function redirectUri() {
    return location.origin + location.pathname;
  }

  function keepPending(pending) {
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
  }

  // What the tab kept before it left, once: a second read finds nothing.
  function takePending() {
    const raw = sessionStorage.getItem(PENDING);
    sessionStorage.removeItem(PENDING);
    try {
      return raw ? JSON.parse(raw) : null;
    } catch (e) {
      return null;
    }
  }

  async function signInWith(provider) {
    const verifier = randomToken();
    const state = randomToken();
    const query = new URLSearchParams({
      redirect_uri: redirectUri(),
      code_challenge: await challengeOf(verifier),
      code_challenge_method: "S256",
      state: state,
    });
    keepPending({ mode: "sign-in", provider: provider.id, verifier: verifier, state: state });
    location.assign("auth/oidc/" + encodeURIComponent(provider.id) + "/start?" + query);
    return "Going to " + provider.name + "...";
  }

  async function link(provider) {
    const verifier = randomToken();
    const body = { redirect_uri: redirectUri(), code_challenge: await challengeOf(verifier) };
    const password = $("link-password").value;
    if (password) body.password = password;
    let answer;
    try {
      answer = await api("POST", "auth/oidc/" + encodeURIComponent(provider.id) + "/link", body);
    } catch (e) {
      if (e.code !== "reauthentication_required" || password) throw e;
      $("link-password").focus();
      throw new Error("Enter your current password, then press Link " + provider.name + " again.");
    }
    $("link-password").value = "";
    // The link's start URL carries no state: the mode marks the answer as this tab's link.
    keepPending({ mode: "link", provider: provider.id, verifier: verifier, access: access });
    location.assign(answer.url);
    return "Going to " + provider.name + "...";
  }

  // The provider's answer in the fragment (`code` or `error`), out of the address bar at once.
  function takeAnswer() {
    const answer = new URLSearchParams(location.hash.slice(1));
    if (!answer.has("code") && !answer.has("error")) return null;
    history.replaceState(null, "", location.pathname + location.search);
    return answer;
  }

  function callbackError(error, name) {
    if (error === "account_exists") {
      return "An account with this address exists. Sign in with your password, then link " + name + " from your account page.";
    }
    if (error === "access_denied") return "Sign-in was refused.";
    return "Signing in with " + name + " did not work. Please try again.";
  }

  // Back from a provider: the answer checked against what this tab kept, then exchanged.
  async function returned(answer) {
    const pending = takePending();
    // A sign-in's answer brings back the state kept; a link's start carries none.
    const state = pending && (pending.mode === "link" ? null : pending.state);
    if (!pending || state === undefined || answer.get("state") !== state) {
      throw new Error("This sign-in was not started here, or was finished already. Please start again.");
    }
    const name = providerName(pending.provider);
    if (pending.access) {
      // Back from linking: the session the tab had before it left.
      await signedIn({ access_token: pending.access }).catch(function () { signedOut(); });
    }
    if (answer.has("error")) throw new Error(callbackError(answer.get("error"), name));
    const exchanged = await api("POST", "auth/oidc/exchange", { code: answer.get("code"), code_verifier: pending.verifier }, false);
    if (!exchanged.identity) return signedIn(exchanged);
    if (access) await refresh();
    return "Linked " + providerName(exchanged.identity.provider) + ".";
  }

  async function loadProviders() {
    try {
      providers = (await api("GET", "auth/oidc/providers", undefined, false)).providers || [];
    } catch (e) {
      providers = [];
    }
    $("provider-sign-in").replaceChildren.apply($("provider-sign-in"), providers.map(function (p) {
      return button("Sign in with " + p.name, function () { return signInWith(p); });
    }));
    $("provider-links").replaceChildren.apply($("provider-links"), providers.map(function (p) {
      return button("Link " + p.name, function () { return link(p); });
    }));
    $("identities-section").hidden = providers.length === 0;
  }

  // A passkey sign-in ceremony's second half, for the first or the second factor.
  async function assertion(options) {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
    const credential = await navigator.credentials.get({ publicKey: publicKey });
    return credential.toJSON();
  }

  act($("password-sign-in"), async function () {
    const tokens = await api("POST", "auth/login", { email: $("email").value, password: $("password").value }, false);
    return signedIn(tokens);
  });

  act($("passkey-sign-in"), async function () {
    const email = $("email").value.trim();
    const options = await api("POST", "auth/passkeys/login/options", email ? { email: email } : {}, false);
    const credential = await assertion(options);
    const tokens = await api("POST", "auth/passkeys/login", { ceremony_id: options.ceremony_id, credential: credential }, false);
    return signedIn(tokens);
  });

  act($("second-factor"), async function () {
    const code = $("code").value.trim();
    const body = /^[0-9]{6}$/.test(code) ? { mfa_token: mfaToken, code: code } : { mfa_token: mfaToken, recovery_code: code };
    return signedIn(await api("POST", "auth/mfa/verify", body, false));
  });

  act($("second-factor-passkey"), async function () {
    const options = await api("POST", "auth/mfa/passkey/options", { mfa_token: mfaToken }, false);
    const credential = await assertion(options);
    return signedIn(await api("POST", "auth/mfa/verify", { mfa_token: mfaToken, passkey: credential }, false));
  });

  act($("sign-out"), async function () {
    await api("POST", "auth/logout", {});
    signedOut();
    return "You are signed out.";
  });

  act($("sign-out-everywhere"), async function () {
    await api("POST", "auth/logout", { all: true });
    signedOut();
    return "Every session was signed out.";
  });

  act($("add-passkey"), async function () {
    const password = $("passkey-password").value;
    const options = await api("POST", "auth/passkeys/register/options", password ? { password: password } : {});
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey);
    const credential = await navigator.credentials.create({ publicKey: publicKey });
    const name = $("passkey-name").value.trim();
    const body = { ceremony_id: options.ceremony_id, credential: credential.toJSON() };
    if (name) body.name = name;
    await api("POST", "auth/passkeys/register", body);
    $("passkey-name").value = "";
    $("passkey-password").value = "";
    await refresh();
    return "The passkey was added.";
  });

  act($("totp-setup"), async function () {
    const enrolment = await api("POST", "auth/mfa/totp/setup", { password: $("totp-setup-password").value });
    $("totp-setup-password").value = "";
    $("totp-qr").src = "data:image/svg+xml;base64," + btoa(enrolment.qr_svg);
    $("totp-secret").textContent = enrolment.secret;
    $("totp-confirm").hidden = false;
    $("totp-confirm-code").focus();
    return "Scan the code, then confirm with a code from the app.";
  });

  function showCodes(codes) {
    $("recovery-code-list").replaceChildren.apply($("recovery-code-list"), codes.map(function (c) { return item(c, []); }));
    $("recovery-codes").hidden = false;
  }

  act($("totp-confirm"), async function () {
    const answer = await api("POST", "auth/mfa/totp/confirm", { code: $("totp-confirm-code").value.trim() });
    $("totp-confirm-code").value = "";
    showCodes(answer.recovery_codes);
    await refresh();
    return "Two-factor sign-in is on.";
  });

  act($("totp-manage"), async function () {
    await api("DELETE", "auth/mfa/totp", { password: $("totp-manage-password").value, code: $("totp-manage-code").value.trim() });
    $("recovery-codes").hidden = true;
    await refresh();
    return "Two-factor sign-in is off.";
  });

  act($("totp-new-codes"), async function () {
    const answer = await api("POST", "auth/mfa/recovery-codes", { password: $("totp-manage-password").value, code: $("totp-manage-code").value.trim() });
    showCodes(answer.recovery_codes);
    return "New recovery codes; the old ones no longer work.";
  });

  act($("change-password"), async function () {
    await api("POST", "auth/password", { current_password: $("current-password").value, new_password: $("new-password").value });
    $("current-password").value = "";
    $("new-password").value = "";
    await refresh();
    return "The password was changed; every other session was signed out.";
  });

  act($("resend-verification"), async function () {
    const answer = await api("POST", "auth/email/verification");
    return answer.message;
  });

  act($("change-email"), async function () {
    const body = { email: $("new-email").value.trim(), password: $("change-email-password").value };
    const code = $("change-email-code").value.trim();
    if (code) body.code = code;
    const answer = await api("POST", "auth/email", body);
    $("change-email-password").value = "";
    return answer.message;
  });

  const answer = takeAnswer();
  loadProviders().then(function () {
    if (answer) report(function () { return returned(answer); });
  });
})();
