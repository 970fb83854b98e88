// The dashboard's few lines of behaviour: controls post JSON with the session's CSRF token,
// show their result in place and re-render the sections they affect; charts come from the
// JSON the scores section embeds. No inline script anywhere (the CSP forbids it).
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const REFRESH_AFTER = {
    cycle: ["header", "scores", "issues", "approvals", "activity", "audit"],
    approval: ["approvals", "activity", "audit"],
    undo: ["activity", "audit"],
    kill: ["header", "audit"],
  };

  function show(target, text, failed) {
    const box = document.getElementById(target);
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("failed", Boolean(failed));
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof answer.detail === "string" ? answer.detail
        : JSON.stringify(answer.detail || answer);
      throw new Error(`${response.status}: ${detail}`);
    }
    return answer;
  }

  async function refresh(names, query) {
    await Promise.all(names.map(async (name) => {
      const holder = document.querySelector(`[data-section="${name}"]`);
      if (!holder) return;
      const response = await fetch(`/dashboard/sections/${name}${query || ""}`,
        {credentials: "same-origin"});
      if (!response.ok) return;
      holder.innerHTML = await response.text();
      if (name === "scores") drawCharts();
    }));
  }

  async function act(kind, url, body, resultBox) {
    show(resultBox, "working…");
    try {
      const answer = await post(url, body);
      show(resultBox, [answer.message, ...(answer.lines || [])].join("\n"));
    } catch (error) {
      show(resultBox, error.message, true);
    }
    await refresh(REFRESH_AFTER[kind]);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.cycle) {
      const live = document.getElementById("cycle-live").checked;
      if (live && !window.confirm(`Run ${button.textContent} LIVE? Allowed actions execute.`)) return;
      await act("cycle", "/dashboard/actions/cycle",
        {kind: button.dataset.cycle, dry_run: !live}, "control-result");
    } else if (button.dataset.approvalId) {
      const id = button.dataset.approvalId;
      await act("approval", `/dashboard/actions/approvals/${id}/${button.dataset.answer}`, {},
        "control-result");
    } else if (button.dataset.undo) {
      const id = button.dataset.undo;
      if (!window.confirm(`Undo execution ${id}?`)) return;
      await act("undo", `/dashboard/actions/executions/${id}/undo`, {}, "control-result");
    } else if (button.id === "kill-toggle") {
      const on = button.dataset.on === "true";
      const reasonBox = document.getElementById("kill-reason");
      const reason = reasonBox ? reasonBox.value.trim() : "";
      if (on && !reason) { show("control-result", "give a reason to pause executions", true); return; }
      if (!window.confirm(on ? `Pause every execution (${reason})?` : "Resume executions?")) return;
      await act("kill", "/dashboard/actions/kill-switch", {on, reason}, "control-result");
    } else if (button.id === "audit-verify") {
      const response = await fetch("/dashboard/audit/verification", {credentials: "same-origin"});
      document.getElementById("audit-verification").innerHTML = await response.text();
    } else if ("auditBefore" in button.dataset) {
      const before = button.dataset.auditBefore;
      await refresh(["audit"], before ? `?before=${encodeURIComponent(before)}` : "");
    } else if (button.id === "sign-out") {
      await post("/dashboard/sign-out", {}).catch(() => null);
      window.location.assign("/");
    }
  });

  const charts = [];
  function drawCharts() {
    const source = document.getElementById("trend-data");
    charts.splice(0).forEach((chart) => chart.destroy());
    if (!source || typeof uPlot === "undefined") return;
    const trend = JSON.parse(source.textContent);
    const palette = ["#2563eb", "#16a34a", "#d97706", "#9333ea"];
    const specs = [
      ["chart-scores", ["health_score", "alignment_score"]],
      ["chart-kpis", ["activation_rate", "d7_retention", "signup_to_activation", "ltv_cac"]],
    ];
    for (const [id, names] of specs) {
      const holder = document.getElementById(id);
      if (!holder) continue;
      const width = Math.max(260, holder.clientWidth || 600);
      const options = {
        width, height: 200,
        series: [{}, ...names.map((name, i) => ({label: name, stroke: palette[i], width: 2, spanGaps: true}))],
        axes: [{}, {size: 44}],
        scales: {x: {time: true}},
        legend: {show: true},
      };
      charts.push(new uPlot(options, [trend.t, ...names.map((name) => trend[name])], holder));
    }
  }
  drawCharts();
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawCharts, 200);
  });
})();
