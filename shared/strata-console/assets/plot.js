// A small SVG line chart: no library, nothing fetched.
"use strict";
const Plot = (() => {
  const COLORS = ["#2f5bd3", "#d9480f", "#087f5b", "#ae3ec9", "#e67700", "#1098ad", "#c2255c", "#5c940d"];
  const W = 420, H = 180, L = 46, R = 8, T = 10, B = 22;

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + "k";
    if (v >= 10 || v === 0) return String(Math.round(v));
    return v.toFixed(v >= 1 ? 1 : 2);
  }

  // series: [{name, points: [[t, v], ...]}], all over the same times.
  function lines(title, series, unit) {
    const all = series.flatMap(s => s.points);
    const ts = all.map(p => p[0]);
    const t0 = ts.length ? Math.min(...ts) : 0, t1 = ts.length ? Math.max(...ts) : 1;
    const vmax = niceMax(Math.max(0, ...all.map(p => p[1])));
    const x = t => L + (W - L - R) * (t1 === t0 ? 0 : (t - t0) / (t1 - t0));
    const y = v => T + (H - T - B) * (1 - v / vmax);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", "100%");
    const add = (tag, attrs, text) => {
      const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    };
    for (const f of [0, 0.5, 1]) {
      add("line", { x1: L, x2: W - R, y1: y(vmax * f), y2: y(vmax * f), stroke: "#e5e8ef" });
      add("text", { x: L - 4, y: y(vmax * f) + 3, "text-anchor": "end" }, fmt(vmax * f));
    }
    add("text", { x: L, y: H - 6 }, new Date(t0 * 1000).toLocaleTimeString());
    add("text", { x: W - R, y: H - 6, "text-anchor": "end" }, new Date(t1 * 1000).toLocaleTimeString());
    series.forEach((s, i) => {
      if (!s.points.length) return;
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      add("path", { d, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 1.6 });
    });
    const card = document.createElement("div");
    card.className = "card plot";
    const h = document.createElement("div");
    h.innerHTML = `<b></b> <span class="muted"></span>`;
    h.querySelector("b").textContent = title;
    h.querySelector("span").textContent = unit;
    card.appendChild(h);
    card.appendChild(svg);
    const legend = document.createElement("div");
    legend.className = "legend";
    series.forEach((s, i) => {
      const span = document.createElement("span");
      span.innerHTML = `<i style="background:${COLORS[i % COLORS.length]}"></i>`;
      span.appendChild(document.createTextNode(s.name));
      legend.appendChild(span);
    });
    card.appendChild(legend);
    return card;
  }

  return { lines };
})();
