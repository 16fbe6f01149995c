// The account page in a real browser with a virtual authenticator (Chromium's, through CDP):
// sign in with a password, add a passkey, sign out, sign in with the passkey alone, end the
// other session, turn TOTP on with the key read from the page, sign in with password and code,
// remove the passkey. Prints one line per step; writes a screenshot of the signed-in page.
//
// Usage: node account.cjs BASE_URL EMAIL PASSWORD SCREENSHOT_PATH
// PLAYWRIGHT_CORE names the playwright-core package, CHROMIUM the browser (Debian's).
"use strict";

const crypto = require("crypto");
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const [base, email, password, screenshot] = process.argv.slice(2);

const flags = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// RFC 6238 (SHA-1, 6 digits, 30 s) for the key the page shows, `steps` steps from now.
function totp(secret, steps) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "").toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000) + steps));
  const mac = crypto.createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(code).padStart(6, "0");
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: flags,
  });
  try {
    const context = await browser.newContext({ viewport: { width: 900, height: 1400 } });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    const status = (text) => page.getByRole("status").filter({ hasText: text }).waitFor();
    const click = (name) => page.getByRole("button", { name, exact: true }).click();

    await page.goto(`${base}/account`);
    await page.locator("#email").fill(email);
    await page.locator("#password").fill(password);
    await click("Sign in");
    await status("You are signed in.");
    console.log("signed in with the password");

    await page.getByLabel("Name of the new passkey").fill("Laptop");
    await click("Add a passkey");
    await status("The passkey was added.");
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    if (credentials.length !== 1 || !credentials[0].isResidentCredential) {
      throw new Error(`the authenticator holds ${JSON.stringify(credentials)}`);
    }
    console.log("passkey added");

    await click("Sign out");
    await status("You are signed out.");
    await page.locator("#email").fill("");
    await click("Sign in with a passkey");
    await status("You are signed in.");
    console.log("signed in with the passkey alone");

    // The sessions of the registration and of a sign-in elsewhere, besides this one.
    const others = page.getByRole("button", { name: "End this session" });
    if ((await others.count()) !== 2) throw new Error("the other sessions are not listed");
    for (let left = 2; left > 0; left--) {
      await others.first().click();
      await page.locator("#sessions li").nth(left).waitFor({ state: "detached" });
    }
    await status("The session was ended.");
    if ((await page.locator("#sessions li").count()) !== 1) throw new Error("sessions left");
    console.log("the other sessions ended");

    await page.locator("#totp-setup-password").fill(password);
    await click("Turn on two-factor sign-in");
    await status("Scan the code");
    const secret = (await page.locator("#totp-secret").textContent()).trim();
    await page.getByLabel("Code from the app", { exact: true }).fill(totp(secret, 0));
    await click("Confirm");
    await status("Two-factor sign-in is on.");
    await page.locator("#recovery-code-list li").first().waitFor();
    await page.getByText("Recovery codes left: 10.").waitFor();
    console.log("totp on");
    await page.screenshot({ path: screenshot, fullPage: true });

    await click("Sign out");
    await status("You are signed out.");
    await page.locator("#email").fill(email);
    await page.locator("#password").fill(password);
    await click("Sign in");
    await status("Enter the code");
    // The confirming step is spent: the next one.
    await page.getByLabel("Code from your authenticator app, or a recovery code").fill(totp(secret, 1));
    await click("Continue");
    await status("You are signed in.");
    console.log("signed in with password and code");

    await click("Remove Laptop");
    await status("The passkey was removed.");
    console.log("passkey removed");
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
