// Signing in with an OpenID provider on the account page, in a real browser against the real
// test provider (oidc-provider, its own login and consent pages): a sign-in cancelled at the
// provider, then a new account made by the provider, its access token, its one linked sign-in
// that will not unlink; an answer this tab did not ask for; then a password account that links
// a provider account of its own. Prints one line per step, and the first account's access
// token as `token <jwt>`.
//
// Usage: node oidc.cjs BASE_URL NEW_LOGIN PASSWORD_EMAIL PASSWORD LINKED_LOGIN
// PLAYWRIGHT_CORE names the playwright-core package, CHROMIUM the browser (Debian's).
"use strict";

const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const [base, newLogin, email, password, linkedLogin] = process.argv.slice(2);

// Flags for a closed network: no background fetches, no sandbox (the tests run as root).
const flags = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// A browser of its own (its own cookies: no provider session carried over), on loopback only:
// the provider's pages import a web font from the internet, which this machine cannot reach.
async function freshPage(browser) {
  const context = await browser.newContext();
  await context.route("**/*", (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === "localhost" || host === "127.0.0.1" ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  return page;
}

// At the provider: its login page (any password), then its consent page.
async function atProvider(page, login) {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL((url) => url.origin === base && url.pathname === "/account");
}

function expectNoCode(page) {
  if (page.url().includes("#")) throw new Error(`the page keeps the answer in the address bar: ${page.url()}`);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: flags,
  });
  try {
    let page = await freshPage(browser);
    const status = (text) => page.getByRole("status").filter({ hasText: text }).waitFor();
    const click = (name) => page.getByRole("button", { name, exact: true }).click();

    await page.goto(`${base}/account`);
    await click("Sign in with Test provider");
    await page.getByRole("link", { name: "[ Cancel ]" }).click();
    await page.waitForURL((url) => url.origin === base && url.pathname === "/account");
    await status("Sign-in was refused.");
    expectNoCode(page);
    console.log("cancelled at the provider");

    const exchanged = page.waitForResponse((r) => r.url().endsWith("/auth/oidc/exchange"));
    await click("Sign in with Test provider");
    await atProvider(page, newLogin);
    const tokens = await (await exchanged).json();
    await status("You are signed in.");
    expectNoCode(page);
    const who = await page.locator("#who").textContent();
    if (who !== newLogin) throw new Error(`signed in as ${who}`);
    console.log("signed in with the provider");
    console.log(`token ${tokens.access_token}`);

    const listed = page.locator("#identities li");
    await listed.filter({ hasText: `Test provider (${newLogin})` }).waitFor();
    if ((await listed.count()) !== 1) throw new Error("not one linked sign-in");
    console.log("the linked sign-in is listed");

    await click("Unlink Test provider");
    await status("This is your only way to sign in; add a passkey first.");
    if ((await listed.count()) !== 1) throw new Error("the last linked sign-in went");
    console.log("the last linked sign-in stays");

    await page.context().close();
    page = await freshPage(browser);
    await page.goto(`${base}/account#code=not-ours&state=not-ours`);
    await status("This sign-in was not started here");
    expectNoCode(page);
    console.log("an answer not asked for is refused");

    await page.locator("#email").fill(email);
    await page.locator("#password").fill(password);
    await click("Sign in");
    await status("You are signed in.");
    console.log("signed in with the password");

    await click("Link Test provider");
    await atProvider(page, linkedLogin);
    await status("Linked Test provider.");
    expectNoCode(page);
    const back = await page.locator("#who").textContent();
    if (back !== email) throw new Error(`back as ${back}`);
    await page.locator("#identities li").filter({ hasText: `Test provider (${linkedLogin})` }).waitFor();
    console.log("linked");
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
