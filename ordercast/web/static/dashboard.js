// The live order list: load a page with its stream position, then apply events from that position on.
// EventSource resumes by itself with Last-Event-ID; a `reset` means history no longer reaches back,
// so the list is reloaded.
"use strict";

const STATUSES = ["pending_payment", "paid", "payment_failed", "expired", "accepted", "packing",
  "dispatched", "delivered", "cancelled", "refunded"];
const orders = new Map(); // id -> order, keeping the highest version seen
let source = null;
// The notification centre: this admin's notifications (the stream carries every admin's).
const me = document.querySelector("main").dataset.user;
const notes = new Map(); // id -> notification

function text(tag, value, className) {
  const el = document.createElement(tag);
  el.textContent = value ?? "";
  if (className) el.className = className;
  return el;
}

function render() {
  const rows = [...orders.values()].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, 200);
  const body = document.getElementById("orders");
  body.replaceChildren(...rows.map((order) => {
    const tr = document.createElement("tr");
    tr.id = "order-" + order.id;
    tr.dataset.status = order.status;
    const status = text("td");
    status.append(text("span", order.status.replace("_", " "), "status"));
    tr.append(text("td", "#" + order.number), status, text("td", order.total + " " + order.currency),
      text("td", order.tracking_number || "—"), text("td", new Date(order.updated_at).toLocaleString()));
    return tr;
  }));
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const order of orders.values()) counts[order.status] += 1;
  document.getElementById("counters").replaceChildren(...STATUSES.map((s) => {
    const li = document.createElement("li");
    li.dataset.status = s;
    li.append(text("b", String(counts[s])), s.replace("_", " "));
    return li;
  }));
}

function apply(order) {
  const known = orders.get(order.id);
  if (!known || known.version <= order.version) orders.set(order.id, order);
}

function setLive(on) {
  const el = document.getElementById("live");
  el.className = "live " + (on ? "on" : "off");
  el.textContent = on ? "live" : "reconnecting…";
}

async function load() {
  if (source) source.close();
  const response = await fetch("/api/v1/orders?limit=200", { credentials: "same-origin" });
  if (response.status === 401) { location.href = "/login?next=/"; return; }
  const page = await response.json();
  orders.clear();
  page.items.forEach(apply);
  render();
  const query = page.position ? "?last_event_id=" + encodeURIComponent(page.position) : "";
  source = new EventSource("/api/v1/events" + query);
  source.onopen = () => setLive(true);
  source.onerror = () => setLive(false);
  for (const type of ["order.created", "order.status_changed", "order.updated"]) {
    source.addEventListener(type, (message) => { apply(JSON.parse(message.data).data.order); render(); });
  }
  for (const type of ["notification.created", "notification.read", "notification.deleted"]) {
    source.addEventListener(type, (message) => noted(type, JSON.parse(message.data).data));
  }
  source.addEventListener("reset", () => { load(); });
  loadNotes();
}

function setUnread(count) {
  const badge = document.getElementById("unread");
  badge.textContent = String(count);
  badge.className = "badge" + (count ? "" : " none");
}

function renderNotes() {
  const items = [...notes.values()].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, 50);
  document.getElementById("notifications").replaceChildren(...items.map((note) => {
    const li = document.createElement("li");
    li.id = "notification-" + note.id;
    li.dataset.priority = note.priority;
    if (!note.read_at) li.className = "unread";
    li.append(text("b", note.title), text("span", " " + note.body), text("small", new Date(note.created_at).toLocaleString()));
    li.addEventListener("click", () => read(note));
    return li;
  }));
}

function noted(type, data) {
  if (data.user_id !== me) return;
  if (type === "notification.created") notes.set(data.notification.id, data.notification);
  if (type === "notification.read") {
    const now = new Date().toISOString();
    for (const note of notes.values()) if (data.all || data.ids.includes(note.id)) note.read_at ??= now;
  }
  if (type === "notification.deleted") notes.delete(data.id);
  setUnread(data.unread_count);
  renderNotes();
}

async function loadNotes() {
  const [page, count] = await Promise.all([
    fetch("/api/v1/notifications?limit=50", { credentials: "same-origin" }).then((r) => r.json()),
    fetch("/api/v1/notifications/unread-count", { credentials: "same-origin" }).then((r) => r.json()),
  ]);
  notes.clear();
  for (const note of page.items) notes.set(note.id, note);
  setUnread(count.count);
  renderNotes();
}

async function read(note) {
  if (!note.read_at) await post("/api/v1/notifications/" + note.id + "/read");
  if (note.url) location.href = note.url;
}

function post(path, body) {
  return fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

// Web Push: subscribe this browser (with the server's current key) and give the server the subscription.
async function subscribe(ask) {
  if (ask && (await Notification.requestPermission()) !== "granted") return;
  const registration = await navigator.serviceWorker.register("/sw.js");
  await navigator.serviceWorker.ready;
  const { key } = await (await fetch("/api/v1/push/vapid-public-key")).json();
  let subscription = await registration.pushManager.getSubscription();
  const made = subscription?.options.applicationServerKey;
  if (subscription && made && btoa(String.fromCharCode(...new Uint8Array(made))).replace(/\+/g, "-")
      .replace(/\//g, "_").replace(/=+$/, "") !== key) {
    await subscription.unsubscribe(); // made for a key rotated out since
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await post("/api/v1/push/subscriptions", subscription.toJSON());
  document.getElementById("push").hidden = true;
}

function setUpPush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return;
  const button = document.getElementById("push");
  button.addEventListener("click", () => subscribe(true).catch((error) => console.warn("push:", error)));
  if (Notification.permission === "granted") subscribe(false).catch((error) => console.warn("push:", error));
  else if (Notification.permission === "default") button.hidden = false;
}

document.getElementById("bell").addEventListener("click", (event) => {
  const inbox = document.getElementById("inbox");
  inbox.hidden = !inbox.hidden;
  event.currentTarget.setAttribute("aria-expanded", String(!inbox.hidden));
});
document.getElementById("read-all").addEventListener("click", () => post("/api/v1/notifications/read-all"));

setUpPush();
load();
