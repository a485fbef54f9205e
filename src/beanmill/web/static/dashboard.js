// The beanmill dashboard: polls /api/status and draws it. Read-only; no CDN, no framework.
"use strict";
(function () {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const num = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en"));
  let chart = null;

  function duration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }

  function sig(x) { return Number(x).toPrecision(6).replace(/\.?0+$/, ""); }

  function stateClass(state) {
    if (state === "finished with failures") return "failures";
    if (state === "waiting on a full disk") return "disk";
    return state;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    return tr;
  }

  function drawChart(history) {
    const el = $("chart");
    const data = [history.map((p) => p[0]), history.map((p) => p[1]),
                  history.map((p) => p[2]), history.map((p) => p[3])];
    if (chart === null) {
      chart = new uPlot({
        width: el.clientWidth || 900, height: 260,
        scales: { x: { time: false } },
        axes: [{ label: "items" }, { size: 70 }],
        series: [{ label: "items" },
                 { label: "estimate", stroke: "#7a4fd0", width: 2, points: { show: false } },
                 { label: "95% low", stroke: "#b9a5e8", dash: [4, 4], points: { show: false } },
                 { label: "95% high", stroke: "#b9a5e8", dash: [4, 4], points: { show: false } }],
      }, data, el);
    } else {
      chart.setData(data);
    }
  }

  function show(doc) {
    document.title = doc.job + " · " + doc.state + " · beanmill";
    $("name").textContent = doc.job;
    const state = $("state");
    state.textContent = doc.state;
    state.className = "state " + stateClass(doc.state);
    const total = doc.total_items;
    $("items").textContent = num(doc.items) + (total ? " / " + num(total) : "");
    $("bar").style.width = total ? Math.min(100, (100 * doc.items) / total) + "%" : "0";
    $("rate").textContent = doc.rate === null ? "–" : num(doc.rate) + " items/s";
    $("eta").textContent = doc.complete ? "done" : duration(doc.eta_s);
    $("commit").textContent = duration(doc.seconds_since_commit) + " ago";
    $("watching").textContent = num(doc.consumers_watching);
    $("buried").textContent = doc.tubes === null ? "–" :
      num(Object.values(doc.tubes).reduce((a, t) => a + t.buried, 0));
    $("failed-count").textContent = num(doc.failed_items);
    $("result").textContent = doc.report;
    $("stopped").hidden = !doc.stopped_because;
    $("stopped").textContent = doc.stopped_because ? "stopped early: " + doc.stopped_because : "";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();

    const sampling = doc.estimate !== null && doc.estimate.mean !== undefined;
    $("sampling").hidden = !sampling;
    if (sampling) {
      $("estimate").textContent = sig(doc.estimate.mean) +
        (doc.half_width === null ? "" : " ± " + sig(doc.half_width)) +
        " (n=" + num(doc.estimate.n) + ")";
      if (doc.history.length > 0) drawChart(doc.history);
    }

    const hosts = doc.consumers || [];
    $("consumers-card").hidden = hosts.length === 0;
    $("consumers").replaceChildren(...hosts.map((c) => row([
      [c.host], [num(c.items)], [num(c.rate)], [duration(c.last_seen_s) + " ago"]])));

    $("failed-card").hidden = doc.failed.length === 0;
    $("failed").replaceChildren(...doc.failed.map((f) => row([
      [JSON.stringify(f.item)], [f.batch], [String(f.attempts)], [f.error, "err"]])));
  }

  async function poll() {
    try {
      const resp = await fetch("/api/status", { cache: "no-store" });
      const doc = await resp.json();
      if (!resp.ok) throw new Error(doc.error || resp.statusText);
      $("error").hidden = true;
      show(doc);
    } catch (err) {
      $("error").hidden = false;
      $("error").textContent = "cannot read the status (" + err.message +
        "): the job may have ended; showing the last state seen";
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
