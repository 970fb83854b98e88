// The dashboard's few lines of behaviour: controls call the API's own endpoints (the session
// cookie stands for the key) with the session's CSRF token,
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

  async function call(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: method === "GET" ? {} : {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: method === "GET" ? undefined : JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${response.status}: ${answer.detail || response.statusText}`);
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

  // What each API answer says, in a few lines (the endpoints answer JSON, see /docs).
  const DESCRIBE = {
    cycle: (a) => [
      `cycle ${a.cycle_id} (${a.kind}, ${a.mode}) in ${Number(a.duration_s).toFixed(2)} s; ` +
        `policy ${a.policy_name} ${a.policy_version}`,
      `health ${fixed(a.health_before)}, alignment ${fixed(a.alignment_before)}; ` +
        `${(a.issues_found || []).length} issues`,
      ...(a.decisions || []).map((d) => `  ${d.source} ${d.action} conf ${fixed(d.confidence, 2)} ` +
        `-> ${d.verdict} [${d.rule}]` + (d.execution_id ? ` execution ${d.execution_id}` : "") +
        (d.approval_id ? ` approval ${d.approval_id}` : "") + `: ${(d.reasons || []).join("; ")}`),
    ],
    approval: (a) => [`approval ${a.id} ${a.status} by ${a.decided_by}: ${a.action}` +
      (a.execution_id ? `, execution ${a.execution_id}` : "")],
    undo: (a) => [`execution ${a.execution_id} (${a.action}) ${a.status}`],
    kill: (a) => [a.on ? `kill switch on: ${a.reason}` : "kill switch off"],
  };
  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits || 1);
  }

  async function act(kind, url, body) {
    show("control-result", "working…");
    try {
      const answer = await call("POST", url, body);
      show("control-result", DESCRIBE[kind](answer).join("\n"));
    } catch (error) {
      show("control-result", error.message, true);
    }
    await refresh(REFRESH_AFTER[kind]);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const url = button.dataset.endpoint;
    if (button.dataset.cycle) {
      const live = document.getElementById("cycle-live").checked;
      if (live && !window.confirm(`Run ${button.textContent} LIVE? Allowed actions execute.`)) return;
      await act("cycle", button.dataset.cycle, {dry_run: !live});
    } else if (button.dataset.answer) {
      await act("approval", url, {});
    } else if (button.dataset.undo) {
      if (!window.confirm(`Undo execution ${button.dataset.undo}?`)) return;
      await act("undo", url, {});
    } else if (button.id === "kill-toggle") {
      const on = button.dataset.on === "true";
      const reasonBox = document.getElementById("kill-reason");
      const reason = reasonBox ? reasonBox.value.trim() : "";
      if (on && !reason) { show("control-result", "give a reason to pause executions", true); return; }
      if (!window.confirm(on ? `Pause every execution (${reason})?` : "Resume executions?")) return;
      await act("kill", url, {on, reason});
    } else if (button.id === "audit-verify") {
      const box = document.getElementById("audit-verification");
      try {
        const r = await call("GET", url);
        box.textContent = r.ok ? `intact: ${r.entries} entries, head ${r.head_hash.slice(0, 16)}`
          : `BROKEN at entry #${r.first_bad_id}: ${r.reason} (${r.entries} entries verified before it)`;
        box.className = r.ok ? "ok" : "danger";
      } catch (error) {
        box.textContent = error.message;
        box.className = "danger";
      }
    } else if ("auditBefore" in button.dataset) {
      const before = button.dataset.auditBefore;
      await refresh(["audit"], before ? `?before=${encodeURIComponent(before)}` : "");
    } else if (button.id === "sign-out") {
      await fetch("/dashboard/sign-out", {method: "POST", credentials: "same-origin",
        headers: {"X-CSRF-Token": csrf}}).catch(() => null);
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
  // Ready (for people and tests alike): the controls answer clicks and the deferred sections
  // have loaded; a test waits on this, never on a timer.
  refresh([...document.querySelectorAll("[data-deferred]")].map((s) => s.dataset.section))
    .finally(() => { document.body.dataset.ready = "true"; });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawCharts, 200);
  });
})();
