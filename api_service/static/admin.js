// The lightning-wallet admin console: one module, no framework, no build step.
//
// - Tokens live in sessionStorage only (this tab, gone when it closes), never in a URL. The access
//   token is refreshed through /api/v1/auth/refresh when 80 % of its life is over, or after a 401.
//   Refresh tokens rotate and a spent one revokes the whole session, so one refresh at a time.
// - Every value from the API reaches the page through textContent or an attribute, never as HTML.
// - The server decides who is an admin: a 403 from the API shows "Not allowed" and signs out.

const API = "/api/v1";
const STORE = "lw-admin-session";
const REFRESH_AT_LIFE = 0.8;
const AUTO_REFRESH_MS = 5000;
const PAGE_SIZE = 100;
const JOBS_SHOWN = 25;

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

class SessionEnded extends Error {}

// ---- DOM helpers ------------------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "on") Object.entries(value).forEach(([name, fn]) => node.addEventListener(name, fn));
    else if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function setField(root, name, text, value) {
  for (const node of $$(`[data-field="${name}"]`, root)) {
    node.textContent = text;
    if (value === undefined) delete node.dataset.value;
    else node.dataset.value = String(value);
  }
}

const sats = (value) =>
  value === null || value === undefined ? "" : `${Number(value).toLocaleString("en-US")} sat`;
function when(iso) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return iso || "";
  return `${date.toISOString().replace("T", " ").slice(0, 19)} UTC`;
}
const short = (text, keep = 12) =>
  text && text.length > keep * 2 ? `${text.slice(0, keep)}…${text.slice(-6)}` : text || "";

function age(seconds) {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}

function cell(value) {
  if (value instanceof Node) return value;
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// columns: [[heading, row => value, "wrap"?], ...]; a value may be a DOM node (a button). At most
// `limit` rows are shown, and a line says how many more there are.
function table(container, columns, rows, empty = "none", limit = PAGE_SIZE) {
  container.replaceChildren();
  if (!rows.length) {
    container.append(el("p", { class: "muted empty", text: empty }));
    return;
  }
  const head = el("tr", {}, ...columns.map(([heading]) => el("th", { text: heading })));
  const body = rows
    .slice(0, limit)
    .map((row) => el("tr", {}, ...columns.map(([, get, wrap]) => el("td", { class: wrap }, cell(get(row))))));
  container.append(el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
  if (rows.length > limit)
    container.append(el("p", { class: "muted", text: `${rows.length - limit} more not shown.` }));
}

// A shortened value whose whole text is its tooltip.
const abbreviated = (text) => el("span", { title: text, text: short(text) });

function flash(message, kind = "ok") {
  const node = $("#flash");
  node.textContent = message;
  node.className = kind;
  node.hidden = !message;
}

// ---- session ----------------------------------------------------------------------------------

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE));
  } catch {
    return null;
  }
}

function saveSession(auth) {
  const session = {
    accessToken: auth.accessToken,
    refreshToken: auth.refreshToken,
    username: auth.user.username,
    refreshAt: Date.now() + auth.expiresIn * 1000 * REFRESH_AT_LIFE,
  };
  sessionStorage.setItem(STORE, JSON.stringify(session));
  return session;
}

async function readBody(response) {
  if ((response.headers.get("Content-Type") || "").includes("application/json")) {
    try {
      return await response.json();
    } catch {
      // fall through: not the JSON it claims to be
    }
  }
  return { success: false, error: { code: `HTTP_${response.status}`, message: response.statusText } };
}

function post(path, body) {
  return fetch(API + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
}

let refreshing = null;

function refreshSession() {
  refreshing ??= (async () => {
    const session = loadSession();
    if (!session) throw new SessionEnded("You are signed out.");
    const response = await post("/auth/refresh", { refreshToken: session.refreshToken });
    const body = await readBody(response);
    if (!response.ok || !body.success) {
      sessionStorage.removeItem(STORE);
      throw new SessionEnded("Your session has ended: sign in again.");
    }
    return saveSession(body.data);
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function send(method, path, token, body, headers) {
  return fetch(API + path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
}

// One API call with the session's token: refreshed first when it is old, and once more after a 401.
async function api(method, path, { body, headers = {} } = {}) {
  let session = loadSession();
  if (!session) throw new SessionEnded("Sign in first.");
  if (Date.now() >= session.refreshAt) session = await refreshSession();
  let response = await send(method, path, session.accessToken, body, headers);
  if (response.status === 401) {
    const current = loadSession();
    session = current && current.accessToken !== session.accessToken ? current : await refreshSession();
    response = await send(method, path, session.accessToken, body, headers);
  }
  const payload = await readBody(response);
  if (response.status === 401) {
    sessionStorage.removeItem(STORE);
    throw new SessionEnded("Your session has ended: sign in again.");
  }
  if (!response.ok || !payload.success) {
    const error = payload.error || {};
    throw new ApiError(response.status, error.code || "ERROR", error.message || response.statusText);
  }
  return payload;
}

async function signIn(event) {
  event.preventDefault();
  const username = $("#login-username").value;
  const password = $("#login-password");
  const error = $("#login-error");
  error.hidden = true;
  const response = await post("/auth/login", { username, password: password.value }).catch(() => null);
  password.value = "";
  const body = response ? await readBody(response) : { error: { message: "the API did not answer" } };
  if (!response || !response.ok || !body.success) {
    error.textContent = `Sign-in failed: ${body.error.message}`;
    error.hidden = false;
    return;
  }
  saveSession(body.data);
  flash("");
  if (location.hash !== "#overview") location.hash = "#overview";
  else route();
}

// Forget the tokens here, then revoke the refresh token at the API (logout takes the access token,
// refreshed first if it is old). A failure there still leaves this tab signed out.
async function endSession() {
  let session = loadSession();
  sessionStorage.removeItem(STORE);
  stopAutoRefresh();
  if (!session) return;
  if (Date.now() >= session.refreshAt) {
    const response = await post("/auth/refresh", { refreshToken: session.refreshToken }).catch(() => null);
    const body = response ? await readBody(response) : null;
    if (!body || !body.success) return;
    session = body.data;
  }
  await send("POST", "/auth/logout", session.accessToken, { refreshToken: session.refreshToken }).catch(
    () => null,
  );
}

async function signOut(message) {
  show("login");
  flash(message, "ok");
  await endSession();
}

// ---- views ------------------------------------------------------------------------------------

let autoRefresh = null;

function stopAutoRefresh() {
  clearInterval(autoRefresh);
  autoRefresh = null;
}

function startAutoRefresh(load) {
  stopAutoRefresh();
  autoRefresh = setInterval(() => {
    if (!document.hidden) load().catch(failed);
  }, AUTO_REFRESH_MS);
}

function show(name) {
  for (const view of $$("[data-view]")) view.hidden = view.id !== `view-${name}`;
  const session = loadSession();
  const signedIn = Boolean(session) && name !== "login" && name !== "forbidden";
  $("#nav").hidden = !signedIn;
  $("#session").hidden = !signedIn;
  $("#whoami").textContent = signedIn ? `Signed in as ${session.username}` : "";
  for (const link of $$("[data-nav]")) link.classList.toggle("current", link.dataset.nav === name);
  if (name === "login") $("#login-username").focus();
}

function stamp(view) {
  for (const node of $$("[data-updated]", view))
    node.textContent = `Updated ${when(new Date().toISOString())}.`;
}

async function loadOverview() {
  const view = $("#view-overview");
  const [treasury, reconciliation, node] = await Promise.allSettled([
    api("GET", "/admin/treasury"),
    api("GET", "/admin/reconciliation"),
    api("GET", "/admin/node"),
  ]);
  // Signed out or not an admin: that is the answer for the whole view. Anything else: that card only.
  const fatal = [treasury, reconciliation, node].find(
    (r) => r.status === "rejected" && (r.reason instanceof SessionEnded || r.reason.status === 403),
  );
  if (fatal) throw fatal.reason;
  const problem = (result) => `unavailable (${result.reason.message})`;

  if (treasury.status === "fulfilled") {
    const t = treasury.value.data;
    setField(view, "treasury-balance", sats(t.balanceSat), t.balanceSat);
    setField(view, "treasury-held", sats(t.heldSat), t.heldSat);
    setField(view, "treasury-available", sats(t.availableSat), t.availableSat);
  } else setField(view, "treasury-balance", problem(treasury));

  if (reconciliation.status === "fulfilled") {
    const r = reconciliation.value.data;
    setField(view, "liabilities", sats(r.liabilitiesSat), r.liabilitiesSat);
    setField(view, "recon-status", r.status === "ok" ? "ok" : "MISMATCH", r.status);
    $('[data-field="recon-status"]', view).className = `big ${r.status === "ok" ? "good" : "bad"}`;
    setField(view, "recon-surplus", sats(r.surplusSat), r.surplusSat);
    setField(view, "recon-checked", when(r.checkedAt));
    table(
      $("#mismatches", view),
      [
        ["kind", (m) => m.kind],
        ["message", (m) => m.message, "wrap"],
        ["details", (m) => m, "wrap"],
      ],
      r.mismatches,
    );
    table(
      $("#anomalies", view),
      [
        ["id", (a) => a.id],
        ["kind", (a) => a.kind],
        ["message", (a) => a.message, "wrap"],
        ["seen", (a) => a.occurrences],
        ["last seen", (a) => when(a.lastSeenAt)],
        ["payment", (a) => a.paymentId],
        ["invoice", (a) => a.invoiceId],
      ],
      r.anomalies,
    );
  } else {
    const why =
      reconciliation.reason.status === 404 ? "no reconciliation has run yet" : problem(reconciliation);
    for (const name of ["liabilities", "recon-status"]) setField(view, name, why);
    $('[data-field="recon-status"]', view).className = "big";
    table($("#mismatches", view), [], [], why);
    table($("#anomalies", view), [], [], why);
  }

  if (node.status === "fulfilled") {
    const n = node.value.data;
    setField(view, "node-local", sats(n.channelBalance.localSat), n.channelBalance.localSat);
    const synced = n.syncedToChain ? "synced" : "NOT synced";
    setField(
      view,
      "node-about",
      `${n.alias} on ${n.network}, ${n.numActiveChannels} active channel(s), ${synced}`,
    );
  } else {
    setField(view, "node-local", "unavailable");
    setField(view, "node-about", node.reason.message);
  }
}

// -- users --

let adjusting = null; // {user, key, fingerprint}: the Idempotency-Key is reused until the body changes
let confirmingDeactivation = null;

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "console-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function loadUsers() {
  const q = $("#user-q").value.trim();
  const query = new URLSearchParams({ pageSize: String(PAGE_SIZE) });
  if (q) query.set("q", q);
  const { data, pagination } = await api("GET", `/users?${query}`);
  const more =
    pagination.totalItems > data.length ? `, the first ${data.length} shown: narrow the search` : "";
  $("#users-count").textContent = `${pagination.totalItems} user(s)${more}.`;
  table(
    $("#users"),
    [
      ["username", (u) => u.username],
      ["role", (u) => u.role],
      ["active", (u) => (u.isActive ? "yes" : "no")],
      ["created", (u) => when(u.createdAt)],
      ["last sign-in", (u) => when(u.lastLoginAt)],
      ["id", (u) => u.id],
      ["", (u) => userActions(u)],
    ],
    data,
    q ? "no user matches" : "no users",
  );
}

function userActions(user) {
  const adjust = el("button", {
    type: "button",
    "data-action": "adjust",
    on: { click: () => openAdjust(user) },
    text: "Adjust…",
  });
  if (!user.isActive) return el("span", {}, adjust);
  const confirming = confirmingDeactivation === user.id;
  const button = el("button", {
    type: "button",
    class: confirming ? "danger" : "",
    "data-action": confirming ? "confirm-deactivate" : "deactivate",
    text: confirming ? `Really deactivate ${user.username}?` : "Deactivate",
    on: { click: () => (confirming ? deactivate(user) : askDeactivation(user)) },
  });
  return el("span", {}, adjust, " ", button);
}

function askDeactivation(user) {
  confirmingDeactivation = user.id;
  loadUsers().catch(failed);
}

async function deactivate(user) {
  confirmingDeactivation = null;
  await api("DELETE", `/users/${encodeURIComponent(user.id)}`).then(
    () => flash(`Deactivated ${user.username}: their tokens are revoked, their history kept.`),
    failed,
  );
  await loadUsers().catch(failed);
}

function openAdjust(user) {
  adjusting = { user, key: null, fingerprint: null };
  $("#adjust-user").textContent = user.username;
  $("#adjust-form").hidden = false;
  $("#adjust-amount").focus();
  loadAdjustments(user).catch(failed);
}

function closeAdjust() {
  adjusting = null;
  $("#adjust-form").reset();
  $("#adjust-form").hidden = true;
}

async function submitAdjustment(event) {
  event.preventDefault();
  if (!adjusting) return;
  const { user } = adjusting;
  const body = {
    userId: user.id,
    amountSat: Number($("#adjust-amount").value),
    direction: $("#adjust-direction").value,
    reason: $("#adjust-reason").value,
  };
  const fingerprint = JSON.stringify(body);
  if (adjusting.fingerprint !== fingerprint) adjusting = { user, key: randomKey(), fingerprint };
  const button = $('#adjust-form button[type="submit"]');
  button.disabled = true;
  try {
    const { data } = await api("POST", "/admin/adjustments", {
      body,
      headers: { "Idempotency-Key": adjusting.key },
    });
    const [verb, to] = data.direction === "credit" ? ["Credited", "to"] : ["Debited", "from"];
    flash(`${verb} ${sats(data.amountSat)} ${to} ${data.username}: ${data.reason}`);
    closeAdjust();
    await loadAdjustments(user);
  } catch (error) {
    failed(error);
  } finally {
    button.disabled = false;
  }
}

async function loadAdjustments(user) {
  const query = new URLSearchParams({ userId: user.id, pageSize: "5" });
  const { data } = await api("GET", `/admin/adjustments?${query}`);
  $("#adjustments-user").textContent = user.username;
  $("#adjustments-of").hidden = false;
  table(
    $("#adjustments"),
    [
      ["when", (a) => when(a.createdAt)],
      ["direction", (a) => a.direction],
      ["amount", (a) => sats(a.amountSat)],
      ["reason", (a) => a.reason, "wrap"],
      ["by", (a) => a.createdByUsername],
    ],
    data,
  );
}

// -- payments, jobs, webhooks --

async function loadPayments() {
  const { data, pagination } = await api("GET", `/admin/payments/in-flight?pageSize=${PAGE_SIZE}`);
  table(
    $("#payments"),
    [
      ["age", (p) => age(p.ageS)],
      ["state", (p) => p.status],
      ["user", (p) => p.username],
      ["amount", (p) => sats(p.amountSat)],
      ["fee limit", (p) => sats(p.feeLimitSat)],
      ["from", (p) => (p.fromTreasury ? "treasury" : p.internal ? "user (internal)" : "user")],
      ["destination", (p) => abbreviated(p.destination)],
      ["payment hash", (p) => abbreviated(p.paymentHash)],
      ["sends", (p) => p.attempts],
      ["created", (p) => when(p.createdAt)],
      ["id", (p) => p.id],
    ],
    data,
    "no payment in flight",
  );
  if (pagination.totalItems > data.length) {
    $("#payments").append(
      el("p", { class: "muted", text: `${pagination.totalItems - data.length} more not shown.` }),
    );
  }
  stamp($("#view-payments"));
}

async function loadJobs() {
  const { data } = await api("GET", "/admin/jobs");
  const health = data.workerHealth;
  const line = $("#jobs-health");
  const worker = health.alive ? `alive (${health.value})` : "NO HEALTH CHECK: is a worker running?";
  line.textContent = `Queue ${data.queueName}: ${data.queuedTotal} queued. Worker: ${worker}`;
  line.className = health.alive ? "good" : "bad";
  const jobs = $("#jobs");
  jobs.replaceChildren();
  const part = (title, rows, columns) => {
    const box = el("div");
    jobs.append(el("h3", { text: title }), box);
    table(box, columns, rows, "none", JOBS_SHOWN);
  };
  const counts = Object.entries(data.counts).map(([name, c]) => ({ name, ...c }));
  part(`Counts${data.countsTruncated ? " (truncated)" : ""}`, counts, [
    ["function", (c) => c.name],
    ["queued", (c) => c.queued],
    ["in progress", (c) => c.inProgress],
    ["succeeded", (c) => c.succeeded],
    ["failed", (c) => c.failed],
  ]);
  const jobColumns = [
    ["id", (j) => j.id],
    ["function", (j) => j.function],
    ["args", (j) => j.args, "wrap"],
    ["enqueued", (j) => when(j.enqueueTime)],
    ["try", (j) => j.jobTry],
  ];
  part("Queued", data.queued, jobColumns);
  part("In progress", data.inProgress, jobColumns);
  part("Recent results", data.recentResults, [
    ["id", (j) => j.id],
    ["function", (j) => j.function],
    ["success", (j) => (j.success ? "yes" : "NO")],
    ["finished", (j) => when(j.finishTime)],
    ["result", (j) => j.result, "wrap"],
  ]);
  stamp($("#view-jobs"));
}

async function loadWebhooks() {
  const { data } = await api("GET", `/admin/webhooks/deliveries?status=failed&pageSize=${PAGE_SIZE}`);
  table(
    $("#webhooks"),
    [
      ["id", (d) => d.id],
      ["user", (d) => d.userId],
      ["event", (d) => d.event],
      ["url", (d) => d.url, "wrap"],
      ["attempts", (d) => d.attempts],
      ["last answer", (d) => d.lastStatusCode ?? ""],
      ["last error", (d) => d.lastError, "wrap"],
      ["last attempt", (d) => when(d.lastAttemptAt)],
      [
        "",
        (d) =>
          el("button", {
            type: "button",
            "data-action": "redeliver",
            text: "Redeliver",
            on: { click: () => redeliver(d) },
          }),
      ],
    ],
    data,
    "no failed delivery",
  );
}

async function redeliver(delivery) {
  try {
    const { data } = await api(
      "POST",
      `/admin/webhooks/deliveries/${encodeURIComponent(delivery.id)}/redeliver`,
    );
    flash(
      `Delivery ${data.id} (${data.event}) is ${data.status} again: the worker sends it within a few seconds.`,
    );
  } catch (error) {
    failed(error);
  }
  await loadWebhooks().catch(failed);
}

const VIEWS = {
  overview: { load: loadOverview },
  users: { load: loadUsers },
  payments: { load: loadPayments, auto: true },
  jobs: { load: loadJobs, auto: true },
  webhooks: { load: loadWebhooks },
};

function failed(error) {
  if (error instanceof SessionEnded) {
    stopAutoRefresh();
    show("login");
    flash(error.message, "error");
  } else if (error instanceof ApiError && error.status === 403) {
    const session = loadSession();
    const who = session ? session.username : "This account";
    $("#forbidden-text").textContent =
      `${who} is not an administrator: the API refused with ${error.message}.`;
    show("forbidden");
    flash("");
    endSession();
  } else {
    flash(error.message || String(error), "error");
  }
}

function route() {
  stopAutoRefresh();
  if (!loadSession()) {
    show("login");
    return;
  }
  const name = location.hash.slice(1) in VIEWS ? location.hash.slice(1) : "overview";
  const view = VIEWS[name];
  show(name);
  view.load().catch(failed);
  if (view.auto) startAutoRefresh(view.load);
}

function start() {
  $("#login-form").addEventListener("submit", (event) => signIn(event).catch(failed));
  $("#logout").addEventListener("click", () => signOut("You are signed out."));
  $("#forbidden-again").addEventListener("click", () => show("login"));
  $("#user-search").addEventListener("submit", (event) => {
    event.preventDefault();
    confirmingDeactivation = null;
    loadUsers().catch(failed);
  });
  $("#adjust-form").addEventListener("submit", submitAdjustment);
  $("#adjust-cancel").addEventListener("click", closeAdjust);
  for (const button of $$("[data-reload]")) {
    button.addEventListener("click", () => {
      flash("");
      const name = button.closest("[data-view]").id.replace("view-", "");
      VIEWS[name].load().catch(failed);
    });
  }
  window.addEventListener("hashchange", () => {
    flash("");
    route();
  });
  route();
}

start();
