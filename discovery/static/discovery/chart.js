// A small SVG line chart for point history (served by the app: no CDN on building networks).
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render(container, readings, units) {
    container.innerHTML = "";
    if (!readings.length) {
      container.textContent = "No readings in this period.";
      return;
    }
    const width = 720, height = 260, left = 56, right = 12, top = 12, bottom = 32;
    const times = readings.map((r) => new Date(r.t).getTime());
    const values = readings.map((r) => r.v);
    let tMin = Math.min(...times), tMax = Math.max(...times);
    let vMin = Math.min(...values), vMax = Math.max(...values);
    if (tMax === tMin) tMax = tMin + 1;
    if (vMax === vMin) { vMax += 1; vMin -= 1; }
    const x = (t) => left + ((t - tMin) / (tMax - tMin)) * (width - left - right);
    const y = (v) => top + (1 - (v - vMin) / (vMax - vMin)) * (height - top - bottom);
    const svg = el("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", class: "history-chart",
      "aria-label": `history, ${readings.length} readings`});
    for (let i = 0; i <= 4; i++) {
      const v = vMin + ((vMax - vMin) * i) / 4;
      svg.appendChild(el("line", {x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid"}));
      svg.appendChild(el("text", {x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis"},
        `${v.toFixed(1)}${units ? " " : ""}${i === 4 ? units || "" : ""}`));
    }
    [tMin, (tMin + tMax) / 2, tMax].forEach((t) => {
      svg.appendChild(el("text", {x: x(t), y: height - 10, "text-anchor": "middle", class: "axis"},
        new Date(t).toLocaleTimeString()));
    });
    const path = readings.map((r, i) => `${i ? "L" : "M"}${x(times[i]).toFixed(1)},${y(r.v).toFixed(1)}`).join(" ");
    svg.appendChild(el("path", {d: path, class: "line"}));
    if (readings.length < 60) {
      readings.forEach((r, i) => svg.appendChild(el("circle", {cx: x(times[i]), cy: y(r.v), r: 2.5, class: "dot"})));
    }
    container.appendChild(svg);
  }

  window.BMSChart = {render};
})();
