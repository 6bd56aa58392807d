// Live updates over the websocket: values on every open page change without a reload.
// When the connection drops the page says so and reconnects by itself (with back-off).
(function () {
  "use strict";
  const status = document.getElementById("connection-status");
  let delay = 500;

  function setState(state, text) {
    if (!status) return;
    status.dataset.state = state;
    status.textContent = text;
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "—" : String(text);
    return td;
  }

  function prependRow(tableId, cells) {
    const table = document.getElementById(tableId);
    if (!table) return;
    const body = table.tBodies[0];
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    const row = document.createElement("tr");
    cells.forEach((text) => row.appendChild(cell(text)));
    row.classList.add("fresh");
    body.insertBefore(row, body.firstChild);
  }

  const SOURCES = {external_bacnet_write: "External BACnet write", web: "Web page", api: "API", internal: "Internal (business logic)"};

  function onVirtualChange(event) {
    const when = new Date(event.timestamp).toLocaleString();
    const by = event.source_address || event.user || event.source;
    document.querySelectorAll(`[data-object-name="${CSS.escape(event.object_name)}"]`).forEach((card) => {
      const value = card.querySelector('[data-field="present-value"]');
      if (value) value.textContent = event.present_value_text;
      const oos = card.querySelector('[data-field="out-of-service"]');
      if (oos) oos.textContent = event.out_of_service ? "yes" : "no";
      const def = card.querySelector('[data-field="relinquish-default"]');
      if (def && event.relinquish_default_text !== undefined) def.textContent = event.relinquish_default_text;
      (event.priority_array_text || []).forEach((text, index) => {
        const slot = card.querySelector(`[data-slot="${index + 1}"]`);
        if (!slot) return;
        slot.textContent = text || "·";
        slot.classList.toggle("winning", event.current_command_priority === index + 1);
      });
      card.classList.remove("flash");
      void card.offsetWidth;
      card.classList.add("flash");
    });
    if (event.external) {
      const last = document.getElementById("last-external-write");
      if (last) last.textContent = when;
    }
    const shortName = event.object_name.replace(/^Virtual_\d+_/, "");
    prependRow("write-history", [when, shortName, event.property, event.value_text, event.priority, SOURCES[event.source] || event.source, by]);
    prependRow("latest-writes", [when, event.object_name + " " + event.property, event.value_text, event.priority, by]);
  }

  function onPointUpdates(updates) {
    updates.forEach((update) => {
      const row = document.querySelector(`tr[data-point-id="${update.point_id}"]`);
      if (!row) return;
      const value = row.querySelector('[data-field="value"]');
      if (value) value.textContent = update.value_text;
      const updated = row.querySelector('[data-field="updated"]');
      if (updated) updated.textContent = new Date(update.timestamp).toLocaleTimeString();
      const flags = row.querySelector('[data-field="flags"]');
      if (flags && update.status_flags && update.status_flags.length === 4) {
        const names = ["alarm", "fault", "overridden", "out of service"];
        const set = names.filter((_, i) => update.status_flags[i]);
        flags.innerHTML = "";
        const badge = document.createElement("span");
        badge.className = "badge " + (set.length ? "warn" : "ok");
        badge.textContent = set.length ? set.join(", ") : "normal";
        flags.appendChild(badge);
      }
    });
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/virtual-devices/`);
    socket.onopen = () => {
      delay = 500;
      setState("live", "Live");
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "external_write_notification") onVirtualChange(data);
      else if (data.type === "point_update") onPointUpdates(data.updates || []);
    };
    socket.onclose = () => {
      setState("lost", "Connection lost — reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  window.BMSLive = {onVirtualChange, onPointUpdates};
  connect();
})();
