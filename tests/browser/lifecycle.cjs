// The account lifecycle in a real browser, as a person does it: from the local server's inbox,
// follow the verification link and confirm; ask for a reset, follow that link, try a weak
// password (and read why it is refused), then set a strong one.
//
// Usage: node lifecycle.cjs BASE_URL EMAIL NEW_PASSWORD
// PLAYWRIGHT_CORE names the playwright-core package, CHROMIUM the browser (Debian's).
"use strict";

const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const [base, email, newPassword] = process.argv.slice(2);

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

async function openNewestLink(page, path) {
  await page.goto(`${base}/_dev/inbox`);
  const link = page.locator(`a[href*="${path}#token="]`).first();
  await link.click();
  await page.waitForURL((url) => url.pathname.endsWith(path));
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: flags,
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(20000);

    await openNewestLink(page, "/verify-email");
    if (page.url().includes("#token=")) throw new Error("the page keeps the token in the address bar");
    await page.getByRole("button", { name: "Confirm my address" }).click();
    await page.getByRole("status").filter({ hasText: "is confirmed" }).waitFor();
    console.log("verified");

    const forgot = await page.request.post(`${base}/auth/password/forgot`, { data: { email } });
    if (forgot.status() !== 202) throw new Error(`forgot: ${forgot.status()}`);
    await openNewestLink(page, "/reset-password");
    await page.getByLabel("New password").fill("password1");
    await page.getByRole("button", { name: "Set the new password" }).click();
    await page.getByRole("status").filter({ hasText: "stronger password" }).waitFor();
    console.log("weak refused");
    await page.getByLabel("New password").fill(newPassword);
    await page.getByRole("button", { name: "Set the new password" }).click();
    await page.getByRole("status").filter({ hasText: "password was changed" }).waitFor();
    console.log("reset");
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
