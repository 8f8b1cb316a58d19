// HelioCloud portal UI: plain JS, no build step. Talks to the JSON API at /api with the
// Cognito ID token. Sign-in: the Cognito hosted UI with PKCE (deployed) or the sandbox's
// local sign-in route (config.json says which).
"use strict";

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "heliocloud.id_token";
let config = null;
let catalog = null;
let refreshTimer = null;

// ---------------------------------------------------------------- messages
function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
  if (message) box.scrollIntoView({ block: "nearest" });
}
function showNotice(message) {
  const box = $("#notice");
  box.textContent = message;
  box.hidden = !message;
  if (message) setTimeout(() => { if (box.textContent === message) box.hidden = true; }, 6000);
}

// ---------------------------------------------------------------- auth
function token() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  if (!t) return null;
  try {
    const claims = JSON.parse(atob(t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    if (claims.exp * 1000 < Date.now() + 30000) { sessionStorage.removeItem(TOKEN_KEY); return null; }
  } catch (e) { return null; }
  return t;
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function hostedSignIn() {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem("pkce.verifier", verifier);
  sessionStorage.setItem("pkce.state", state);
  const params = new URLSearchParams({
    response_type: "code", client_id: config.client_id, redirect_uri: config.redirect_uri,
    scope: "openid email profile", state, code_challenge_method: "S256", code_challenge: challenge,
  });
  location.assign(`${config.domain}/oauth2/authorize?${params}`);
}

async function finishHostedSignIn() {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  if (!code) return;
  history.replaceState(null, "", location.pathname);
  if (params.get("state") !== sessionStorage.getItem("pkce.state")) {
    showError("Sign-in was interrupted (state mismatch). Please sign in again.");
    return;
  }
  const body = new URLSearchParams({
    grant_type: "authorization_code", client_id: config.client_id, code,
    redirect_uri: config.redirect_uri, code_verifier: sessionStorage.getItem("pkce.verifier"),
  });
  const res = await fetch(`${config.domain}/oauth2/token`, {
    method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body,
  });
  sessionStorage.removeItem("pkce.verifier");
  if (!res.ok) { showError("Sign-in failed; please try again."); return; }
  sessionStorage.setItem(TOKEN_KEY, (await res.json()).id_token);
}

async function sandboxSignIn(event) {
  event.preventDefault();
  const form = event.target;
  showError("");
  const res = await fetch(config.signin, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: form.email.value, password: form.password.value }),
  });
  const doc = await res.json().catch(() => ({}));
  if (!res.ok) { showError(doc.message || "Sign-in failed."); return; }
  sessionStorage.setItem(TOKEN_KEY, doc.id_token);
  form.reset();
  await showDashboard();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(refreshTimer);
  if (config.mode === "cognito") {
    const params = new URLSearchParams({ client_id: config.client_id, logout_uri: config.redirect_uri });
    location.assign(`${config.domain}/logout?${params}`);
    return;
  }
  showSignIn();
}

// ---------------------------------------------------------------- API
async function api(method, path, body) {
  const t = token();
  if (!t) { showSignIn(); throw new Error("Your session has ended; please sign in again."); }
  const res = await fetch(`/api${path}`, {
    method, headers: { Authorization: `Bearer ${t}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const doc = await res.json().catch(() => ({}));
  if (res.status === 401) { sessionStorage.removeItem(TOKEN_KEY); showSignIn(); throw new Error("Your session has ended; please sign in again."); }
  if (!res.ok) throw new Error(doc.message || `The portal answered ${res.status}.`);
  return doc;
}

// ---------------------------------------------------------------- formatting
const usd = (v) => (v === null || v === undefined ? "–" : `$${Number(v).toFixed(2)}`);
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m`;
}
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}
function cell(label, ...children) { return el("td", { "data-label": label }, ...children); }

// ---------------------------------------------------------------- rendering
function renderBudget(budget) {
  const box = $("#budget");
  box.className = `budget ${budget.state}`;
  $("#budget-figures").textContent = `${usd(budget.spent_usd)} of ${usd(budget.monthly_usd)} (${Math.round(budget.ratio * 100)} %)`;
  $("#budget-fill").style.width = `${Math.min(100, budget.ratio * 100)}%`;
  const messages = {
    ok: `Resets on ${budget.resets}.`,
    warn: `You have used over ${Math.round(budget.warn_ratio * 100)} % of your monthly budget. At 100 % new launches are refused and running VMs are stopped.`,
    exceeded: `Your monthly budget is used up: launches are refused and running VMs are stopped until ${budget.resets}. Ask an admin to raise it.`,
  };
  $("#budget-message").textContent = messages[budget.state];
}

function renderChart(daily) {
  // Drawn at the box's own width so bars fill the card on a laptop and on a phone.
  const w = Math.max(240, $("#chart").clientWidth || 280), h = 130, pad = 16, max = Math.max(0.01, ...daily.map((d) => d.usd));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  const barW = w / daily.length;
  daily.forEach((d, i) => {
    const bh = ((h - 2 * pad) * d.usd) / max;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", (i * barW + barW * 0.15).toFixed(1));
    rect.setAttribute("y", (h - pad - bh).toFixed(1));
    rect.setAttribute("width", (barW * 0.7).toFixed(1));
    rect.setAttribute("height", Math.max(bh, 0.5).toFixed(1));
    rect.setAttribute("class", i === daily.length - 1 ? "bar-rect today" : "bar-rect");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${d.date}: ${usd(d.usd)}`;
    rect.append(title);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", (i * barW + barW / 2).toFixed(1));
    label.setAttribute("y", h - 3);
    label.setAttribute("text-anchor", "middle");
    label.textContent = new Date(`${d.date}T00:00:00Z`).toLocaleDateString("en", { weekday: "short", timeZone: "UTC" });
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", (i * barW + barW / 2).toFixed(1));
    value.setAttribute("y", (h - pad - bh - 3).toFixed(1));
    value.setAttribute("text-anchor", "middle");
    value.textContent = d.usd >= 0.005 ? `$${d.usd.toFixed(2)}` : "";
    svg.append(rect, label, value);
  });
  $("#chart").replaceChildren(svg);
}

function renderCosts(costs) {
  $("#spend-month").textContent = usd(costs.month_to_date);
  $("#spend-week").textContent = usd(costs.last_7_days);
  $("#spend-rate").textContent = costs.rate_per_hour > 0 ? `${usd(costs.rate_per_hour)}/h right now` : "nothing running";
  $("#spend-billed").textContent = costs.billed && costs.billed.through
    ? `AWS billed ${usd(costs.billed.usd)} this month, billed through ${costs.billed.through}`
    : "AWS's billed figure appears after the first nightly reconciliation.";
  renderChart(costs.daily);
  renderBudget(costs.budget);
}

function actionButton(label, cls, handler) {
  return el("button", { type: "button", class: cls, onclick: async (e) => {
    e.target.disabled = true;
    showError("");
    try { await handler(); } catch (err) { showError(err.message); } finally { e.target.disabled = false; }
  } }, label);
}

function connectCell(inst) {
  const box = el("div");
  if (inst.ssh_command) box.append(el("code", { class: "ssh" }, inst.ssh_command));
  else if (inst.state === "running") box.append(el("span", { class: "hint" }, "no address yet"));
  box.append(el("div", { class: "hint" }, "or ", el("code", {}, inst.session_manager_command)));
  return box;
}

function renderInstances(list) {
  const running = list.filter((i) => ["pending", "running"].includes(i.state));
  const stopped = list.filter((i) => ["stopping", "stopped"].includes(i.state));
  $("#running tbody").replaceChildren(...running.map((i) => el("tr", { "data-id": i.id },
    cell("Name", i.name), cell("OS", i.os), cell("Image", i.image), cell("Type", i.instance_type),
    cell("Duration", duration(i.running_seconds)), cell("State", el("span", { class: `state ${i.state}` }, i.state)),
    cell("Connect", connectCell(i)),
    cell("", actionButton("Stop", "secondary", async () => { await api("POST", `/instances/${i.id}/stop`); showNotice(`Stopping ${i.name}.`); await refresh(); })),
  )));
  $("#stopped tbody").replaceChildren(...stopped.map((i) => el("tr", { "data-id": i.id },
    cell("Name", i.name), cell("OS", i.os), cell("Image", i.image), cell("Type", i.instance_type),
    cell("State", el("span", { class: `state ${i.state}` }, i.state)), cell("Note", i.stop_reason || ""),
    cell("Actions",
      actionButton("Start", "", async () => { await api("POST", `/instances/${i.id}/start`); showNotice(`Starting ${i.name}.`); await refresh(); }),
      actionButton("Terminate", "danger", async () => {
        if (!confirm(`Terminate ${i.name}? Its disk is deleted and cannot be recovered.`)) return;
        await api("DELETE", `/instances/${i.id}`); showNotice(`Terminating ${i.name}.`); await refresh();
      })),
  )));
  $("#running-empty").hidden = running.length > 0;
  $("#stopped-empty").hidden = stopped.length > 0;
  $("#running").hidden = running.length === 0;
  $("#stopped").hidden = stopped.length === 0;
  // Poll quickly while something is changing, and just after a launch or start: the ledger
  // learns about state changes from EC2's events within seconds.
  return list.some((i) => ["pending", "stopping"].includes(i.state) || (i.running_seconds !== null && i.running_seconds < 30));
}

function renderKeys(keys) {
  $("#keys").replaceChildren(...keys.map((k) => el("li", {},
    el("div", {}, el("strong", {}, k.name), el("div", { class: "fp" }, k.fingerprint || "")),
    actionButton("Delete", "secondary", async () => {
      if (!confirm(`Delete key pair ${k.name}? VMs launched with it keep working but you cannot pick it again.`)) return;
      await api("DELETE", `/keys/${encodeURIComponent(k.name)}`); showNotice(`Deleted key pair ${k.name}.`); await refresh();
    }))));
  $("#keys-empty").hidden = keys.length > 0;
  const select = $("#launch-form").key_name;
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "none (Session Manager only)"), ...keys.map((k) => el("option", { value: k.name }, k.name)));
  select.value = keys.some((k) => k.name === chosen) ? chosen : (keys[0] ? keys[0].name : "");
}

function renderCatalog() {
  const form = $("#launch-form");
  form.image.replaceChildren(...catalog.images.map((i) => el("option", { value: i.name }, i.name)));
  form.instance_type.replaceChildren(...catalog.instance_types.map((t) => el("option", { value: t.type },
    `${t.type} · ${t.vcpus} vCPU · ${t.memory_gib} GiB${t.gpus ? ` · ${t.gpus} GPU` : ""} · ${usd(t.price_per_hour)}/h`)));
  form.volume_gb.min = catalog.volume_gb.min;
  form.volume_gb.max = catalog.volume_gb.max;
  form.volume_gb.value = catalog.volume_gb.default;
  const hint = () => {
    const img = catalog.images.find((i) => i.name === form.image.value);
    $("#image-hint").textContent = img ? `${img.description || img.os} · log in as ${img.ssh_user}` : "";
  };
  form.image.onchange = hint;
  hint();
}

async function renderAdmin() {
  const doc = await api("GET", "/admin/costs");
  $("#admin-summary").textContent = `All users this month: ${usd(doc.total_month_to_date)}` +
    (doc.billed_through ? ` · Cost Explorer billed through ${doc.billed_through}` : "");
  $("#admin-table tbody").replaceChildren(...doc.users.map((u) => {
    const input = el("input", { type: "number", min: "0", step: "1", value: u.budget.monthly_usd, "aria-label": `Budget for ${u.email || u.sub}` });
    return el("tr", {},
      cell("User", u.email || u.sub), cell("This month", usd(u.month_to_date)), cell("Last 7 days", usd(u.last_7_days)),
      cell("$/h now", usd(u.rate_per_hour)),
      cell("Budget", `${usd(u.budget.monthly_usd)} (${Math.round(u.budget.ratio * 100)} %, ${u.budget.state})${u.budget.override ? " · custom" : ""}`),
      cell("Billed", u.billed && u.billed.through ? `${usd(u.billed.usd)} through ${u.billed.through}` : "–"),
      cell("Set budget", el("div", { class: "admin-budget" }, input,
        actionButton("Save", "secondary", async () => {
          await api("PUT", `/admin/budgets/${u.sub}`, { monthly_usd: input.value === "" ? null : Number(input.value) });
          showNotice(`Budget of ${u.email || u.sub} set to ${usd(input.value)}.`); await renderAdmin();
        }))));
  }));
}

// ---------------------------------------------------------------- flows
async function refresh() {
  clearTimeout(refreshTimer);
  try {
    const [instances, keys, costs] = await Promise.all([api("GET", "/instances"), api("GET", "/keys"), api("GET", "/costs")]);
    const busy = renderInstances(instances.instances);
    renderKeys(keys.keys);
    renderCosts(costs);
    if (!$("#admin").hidden) await renderAdmin();
    refreshTimer = setTimeout(refresh, busy ? 3000 : 30000);
  } catch (err) {
    showError(err.message);
  }
}

async function launch(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  button.disabled = true;
  showError("");
  try {
    const body = { name: form.name.value, image: form.image.value, instance_type: form.instance_type.value, volume_gb: Number(form.volume_gb.value) };
    if (form.key_name.value) body.key_name = form.key_name.value;
    const doc = await api("POST", "/instances", body);
    showNotice(`Launching ${doc.instance.name} (${doc.instance.instance_type}).`);
    form.name.value = "";
    await refresh();
  } catch (err) { showError(err.message); } finally { button.disabled = false; }
}

async function createKey(event) {
  event.preventDefault();
  const form = event.target;
  showError("");
  try {
    const doc = await api("POST", "/keys", { name: form.name.value });
    $("#new-key-text").value = doc.private_key;
    $("#new-key-file").textContent = doc.filename;
    $("#new-key-path").textContent = `~/.ssh/${doc.filename}`;
    const link = $("#new-key-download");
    link.download = doc.filename;
    link.href = URL.createObjectURL(new Blob([doc.private_key], { type: "application/x-pem-file" }));
    $("#new-key").hidden = false;
    form.reset();
    await refresh();
  } catch (err) { showError(err.message); }
}

function forgetNewKey() {
  const link = $("#new-key-download");
  if (link.href) URL.revokeObjectURL(link.href);
  link.removeAttribute("href");
  $("#new-key-text").value = "";
  $("#new-key").hidden = true;
}

function showSignIn() {
  $("#dashboard").hidden = true;
  $("#nav").hidden = true;
  $("#signin-view").hidden = false;
  const sandbox = config.mode === "sandbox";
  $("#signin-form").hidden = !sandbox;
  $("#hosted-signin").hidden = sandbox;
  $("#signin-hint").textContent = sandbox ? "Sandbox: sign in as a demo user (see endpoints.json)." : "Use your HelioCloud account.";
}

async function showDashboard() {
  try {
    const [me, cat] = await Promise.all([api("GET", "/me"), api("GET", "/catalog")]);
    catalog = cat;
    $("#who").textContent = me.email;
    $("#admin-link").hidden = !me.admin;
    $("#admin").hidden = !me.admin;
    $("#signin-view").hidden = true;
    $("#nav").hidden = false;
    $("#dashboard").hidden = false;
    renderCatalog();
    await refresh();
  } catch (err) { showError(err.message); }
}

async function main() {
  config = await (await fetch("config.json", { cache: "no-store" })).json();
  $("#signin-form").addEventListener("submit", sandboxSignIn);
  $("#hosted-signin").addEventListener("click", hostedSignIn);
  $("#signout").addEventListener("click", signOut);
  $("#launch-form").addEventListener("submit", launch);
  $("#key-form").addEventListener("submit", createKey);
  $("#new-key-done").addEventListener("click", forgetNewKey);
  if (config.mode === "cognito") await finishHostedSignIn();
  if (token()) await showDashboard(); else showSignIn();
}

main().catch((err) => showError(`The portal could not start: ${err.message}`));
