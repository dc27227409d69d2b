// The live order list: load a page with its stream position, then apply events from that position on.
// EventSource resumes by itself with Last-Event-ID; a `reset` means history no longer reaches back,
// so the list is reloaded.
"use strict";

const STATUSES = ["pending_payment", "paid", "payment_failed", "expired", "accepted", "packing",
  "dispatched", "delivered", "cancelled", "refunded"];
const orders = new Map(); // id -> order, keeping the highest version seen
let source = null;

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
  source.addEventListener("reset", () => { load(); });
}

load();
