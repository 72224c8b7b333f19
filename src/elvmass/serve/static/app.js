// elvmass web page: upload one ECG, show the estimate, the ECG on paper and the model's beat.
// Plain script, no dependencies; everything is fetched from this server only.
"use strict";
const $ = (id) => document.getElementById(id);
const LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];
const FLAG_TEXT = {
  sex_unknown: "sex unknown: the model for both sexes was used",
  no_bsa: "height or weight unknown: no LVMI and no LVH call",
};
let chosen = null;

function fmt(v, d = 0) { return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d); }
function showError(msg) { const e = $("error"); e.textContent = msg; e.hidden = !msg; }

async function loadModel() {
  try {
    const r = await fetch("/v1/model");
    const m = await r.json();
    const n = m.training_cohort && m.training_cohort.n;
    $("model-info").textContent = `bundle “${m.path_name}” · ${m.models.length} network(s)${m.sex_specific ? ", sex-specific" : ""}` +
      (n ? ` · trained on ${n} patients` : "") + (m.created ? ` · ${m.created.slice(0, 10)}` : "") +
      ` · LVH cut-offs ${m.lvh_cutoffs_g_m2.M} (M) / ${m.lvh_cutoffs_g_m2.F} (F) g/m²`;
  } catch (e) { $("model-info").textContent = "model information unavailable"; }
}

function choose(file) {
  chosen = file;
  $("drop-text").textContent = file ? file.name : "Choose an ECG file or drop it here";
  $("submit").disabled = !file;
  showError("");
}

function setupDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => choose(e.target.files[0] || null));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) choose(e.dataTransfer.files[0]); });
  $("form").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
}

async function submit() {
  if (!chosen) return;
  const fd = new FormData();
  fd.append("file", chosen, chosen.name);
  for (const k of ["age_years", "sex", "height_cm", "weight_kg"]) { const v = $(k).value.trim(); if (v) fd.append(k, v); }
  $("submit").disabled = true; $("submit").textContent = "Analysing…"; showError("");
  try {
    const r = await fetch("/v1/predict?detail=true", { method: "POST", body: fd });
    let body;
    try { body = await r.json(); } catch (e) { body = { error: `the server answered ${r.status} without a readable message` }; }
    if (!r.ok) { showError(body.error || `request failed (${r.status})`); return; }
    render(body);
  } catch (e) {
    showError("The service could not be reached. Is it still running?");
  } finally {
    $("submit").disabled = !chosen; $("submit").textContent = "Estimate LV mass";
  }
}

function row(label, value, cls = "") { return `<tr><td>${label}</td><td class="num ${cls}">${value}</td></tr>`; }

function render(p) {
  for (const id of ["result", "params-card", "ecg-card", "beat-card"]) $(id).hidden = false;
  $("result-file").textContent = "· " + p.file;
  $("lvm-value").textContent = fmt(p.lvm_g, 1);
  $("lvm-value").dataset.lvmG = p.lvm_g;
  if (p.lvm_g_low !== undefined && p.lvm_g_high !== undefined && p.lvm_g_low !== null) {
    const lvl = p.level ? `${Math.round(p.level * 100)} % ` : "";
    $("lvm-interval").textContent = `${lvl}interval ${fmt(p.lvm_g_low)}–${fmt(p.lvm_g_high)} g`;
  } else {
    $("lvm-interval").textContent = "no interval with this model bundle";
  }
  $("lvmi-value").textContent = fmt(p.lvmi_g_m2, 1);
  $("bsa").textContent = p.bsa_m2 ? `BSA ${fmt(p.bsa_m2, 2)} m²` : "needs height and weight";
  const box = $("lvh-box");
  box.classList.remove("yes", "no", "unknown");
  if (p.lvh === true || p.lvh === false) {
    box.classList.add(p.lvh ? "yes" : "no");
    $("lvh-value").textContent = p.lvh ? "yes" : "no";
    $("lvh-cutoff").textContent = `LVMI ${fmt(p.lvmi_g_m2)} ${p.lvh ? ">" : "≤"} ${p.lvh_cutoff_g_m2} g/m² (${p.sex === "M" ? "male" : "female"} cut-off)`;
  } else {
    box.classList.add("unknown");
    $("lvh-value").textContent = "not called";
    $("lvh-cutoff").textContent = p.sex ? "needs height and weight" : "needs sex, height and weight";
  }
  const missing = [];
  const src = p.record.patient_in_file;
  for (const [k, label] of [["age_years", "age"], ["sex", "sex"], ["height_cm", "height"], ["weight_kg", "weight"]]) {
    const need = p[k] === null || p[k] === undefined;
    $(k).classList.toggle("need", need);
    if (need) missing.push(label);
  }
  $("missing").hidden = missing.length === 0;
  $("missing").textContent = missing.length ? `Not in the file: ${missing.join(", ")}. Enter ${missing.length > 1 ? "them" : "it"} on the left and estimate again.` : "";
  const from = (k) => (src[k] !== null && src[k] !== undefined && src[k] === p[k]) ? "file" : (p[k] === null || p[k] === undefined ? "" : "entered");
  $("inputs-body").innerHTML =
    row(`Age <span class="muted">${from("age_years")}</span>`, p.age_years === null ? "imputed" : `${fmt(p.age_years)} years`) +
    row(`Sex <span class="muted">${from("sex")}</span>`, p.sex === "M" ? "male" : p.sex === "F" ? "female" : "unknown") +
    row(`Height <span class="muted">${from("height_cm")}</span>`, p.height_cm === null ? "–" : `${fmt(p.height_cm)} cm`) +
    row(`Weight <span class="muted">${from("weight_kg")}</span>`, p.weight_kg === null ? "–" : `${fmt(p.weight_kg)} kg`) +
    row("Model", p.model) +
    row("ECG", `${p.record.format}, ${fmt(p.record.fs_hz)} Hz, ${fmt(p.record.duration_s, 1)} s` + (p.record.acquired_at ? `, ${p.record.acquired_at.replace("T", " ")}` : ""));
  $("flags").innerHTML = p.flags.map((f) => {
    const text = FLAG_TEXT[f] || f.replace(/^imputed:/, "imputed from the training cohort: ").replace(/^measured:/, "measured from the signal: ")
      .replace(/^outside_training_population:/, "outside the training population: ");
    const warn = f.startsWith("outside") || f === "sex_unknown" || f.startsWith("imputed") ? " warn" : "";
    const el = document.createElement("span"); el.className = "flag" + warn; el.textContent = text; return el.outerHTML;
  }).join("");
  renderParams(p);
  drawECG($("ecg"), p.ecg);
  drawBeat($("beat"), p.beat, p.saliency);
}

function renderParams(p) {
  const dev = p.measurements.device || {}, mea = p.measurements.measured || {};
  const used = new Set(p.flags.filter((f) => f.startsWith("measured:")).map((f) => f.slice(9)));
  const spec = [["hr_bpm", "Heart rate", "bpm"], ["pr_ms", "PR interval", "ms"], ["qrs_ms", "QRS duration", "ms"],
    ["qt_ms", "QT interval", "ms"], ["qtc_ms", "QTc", "ms"], ["p_axis_deg", "P axis", "°"],
    ["r_axis_deg", "QRS axis", "°"], ["t_axis_deg", "T axis", "°"]];
  $("params-body").innerHTML = spec.map(([k, label, unit]) => {
    const d = dev[k], m = mea[k];
    const dc = d !== null && d !== undefined && !used.has(k) ? "used" : "", mc = used.has(k) ? "used" : "";
    return `<tr><td>${label} <span class="muted">${unit}</span></td><td class="num ${dc}">${fmt(d)}</td><td class="num ${mc}">${fmt(m)}</td></tr>`;
  }).join("");
  const st = $("statements"); st.innerHTML = "";
  if (p.record.statements.length) {
    const h = document.createElement("div"); h.className = "muted"; h.textContent = "Statements in the file:"; st.appendChild(h);
    for (const s of p.record.statements) { const d = document.createElement("div"); d.textContent = s; st.appendChild(d); }
  }
}

// --- ECG paper ------------------------------------------------------------------------------------
function paper(ctx, x0, y0, wmm, hmm, px) {
  ctx.fillStyle = "#fffafa"; ctx.fillRect(x0, y0, wmm * px, hmm * px);
  for (let i = 0; i <= wmm; i++) {
    ctx.strokeStyle = i % 5 === 0 ? "#eb9a9d" : "#f7d4d5"; ctx.lineWidth = i % 5 === 0 ? 1 : 0.6;
    ctx.beginPath(); ctx.moveTo(x0 + i * px + 0.5, y0); ctx.lineTo(x0 + i * px + 0.5, y0 + hmm * px); ctx.stroke();
  }
  for (let j = 0; j <= hmm; j++) {
    ctx.strokeStyle = j % 5 === 0 ? "#eb9a9d" : "#f7d4d5"; ctx.lineWidth = j % 5 === 0 ? 1 : 0.6;
    ctx.beginPath(); ctx.moveTo(x0, y0 + j * px + 0.5); ctx.lineTo(x0 + wmm * px, y0 + j * px + 0.5); ctx.stroke();
  }
}

function setup(canvas, wmm, hmm, px) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(wmm * px * dpr); canvas.height = Math.round(hmm * px * dpr);
  canvas.style.width = `${wmm * px}px`; canvas.style.height = `${hmm * px}px`;
  const ctx = canvas.getContext("2d"); ctx.scale(dpr, dpr); return ctx;
}

function calPulse(ctx, x, yBase, px) { // 1 mV x 5 mm (200 ms) calibration pulse
  ctx.strokeStyle = "#111"; ctx.lineWidth = 1.2; ctx.beginPath();
  ctx.moveTo(x, yBase); ctx.lineTo(x + 1 * px, yBase); ctx.lineTo(x + 1 * px, yBase - 10 * px);
  ctx.lineTo(x + 6 * px, yBase - 10 * px); ctx.lineTo(x + 6 * px, yBase); ctx.lineTo(x + 7 * px, yBase); ctx.stroke();
}

function trace(ctx, uv, fs, t0, t1, x, yBase, px, mmPerS, mmPerMv) {
  const i0 = Math.max(0, Math.floor(t0 * fs)), i1 = Math.min(uv.length, Math.ceil(t1 * fs));
  ctx.strokeStyle = "#111"; ctx.lineWidth = 1.1; ctx.lineJoin = "round"; ctx.beginPath();
  for (let i = i0; i < i1; i++) {
    const xx = x + ((i / fs) - t0) * mmPerS * px, yy = yBase - (uv[i] / 1000) * mmPerMv * px;
    if (i === i0) ctx.moveTo(xx, yy); else ctx.lineTo(xx, yy);
  }
  ctx.stroke();
}

function fitPx(canvas, wmm) { // pixels per mm that fill the card (at least 3)
  const w = canvas.parentElement.clientWidth || 1000;
  return Math.max(3, Math.floor((w - 4) / wmm * 4) / 4);
}

function drawECG(canvas, ecg) {
  const left = 10, colS = 2.5, rowMm = 30, rows = 4;
  const dur = ecg.uv[0].length / ecg.fs_hz;
  const wmm = left + Math.round(Math.max(10, dur) * 25), hmm = rowMm * rows + 4;
  const px = fitPx(canvas, wmm);
  const ctx = setup(canvas, wmm, hmm, px);
  paper(ctx, 0, 0, wmm, hmm, px);
  const layout = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]];
  ctx.font = "bold 12px system-ui, sans-serif";
  const lead = (name) => ecg.uv[ecg.leads.indexOf(name)];
  for (let r = 0; r < 3; r++) {
    const yBase = (r * rowMm + rowMm * 0.62) * px;
    calPulse(ctx, 1 * px, yBase, px);
    for (let c = 0; c < 4; c++) {
      const x = (left + c * colS * 25) * px;
      trace(ctx, lead(layout[r][c]), ecg.fs_hz, c * colS, (c + 1) * colS, x, yBase, px, 25, 10);
      ctx.fillStyle = "#0b2a55"; ctx.fillText(layout[r][c], x + 4, (r * rowMm + 7) * px);
      if (c > 0) { ctx.strokeStyle = "#111"; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(x, yBase - 3 * px); ctx.lineTo(x, yBase + 3 * px); ctx.stroke(); }
    }
  }
  const yR = (3 * rowMm + rowMm * 0.62) * px;
  calPulse(ctx, 1 * px, yR, px);
  trace(ctx, lead("II"), ecg.fs_hz, 0, dur, left * px, yR, px, 25, 10);
  ctx.fillStyle = "#0b2a55"; ctx.fillText("II (rhythm)", (left * px) + 4, (3 * rowMm + 7) * px);
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#6b3a3c";
  ctx.fillText("25 mm/s   10 mm/mV", (wmm - 40) * px, (hmm - 1.5) * px);
}

function drawBeat(canvas, beat, saliency) {
  const mmPerS = 50, mmPerMv = 10, cols = 6, cellH = 34;
  const L = beat.mv[0].length, dur = L / beat.fs_hz, cellW = Math.ceil(dur * mmPerS) + 6;
  const wmm = cols * cellW, hmm = 2 * cellH;
  const px = Math.min(5, fitPx(canvas, wmm));
  $("beat-scale").textContent = `${beat.view.replace("_", " ")}, ${fmt(dur * 1000)} ms at ${fmt(beat.fs_hz)} Hz · 50 mm/s · 10 mm/mV`;
  const ctx = setup(canvas, wmm, hmm, px);
  paper(ctx, 0, 0, wmm, hmm, px);
  let sal = null;
  if (saliency && !saliency.error) sal = saliency.lead_time || saliency.saliency || null;
  let smax = 0;
  if (sal) for (const r of sal) for (const v of r) smax = Math.max(smax, Math.abs(v));
  const fid = beat.fiducials_ms || {};
  for (let k = 0; k < 12; k++) {
    const c = k % cols, r = Math.floor(k / cols);
    const x = (c * cellW + 3) * px, yBase = (r * cellH + cellH * 0.6) * px;
    if (sal && smax > 0) {
      for (let i = 0; i < L; i++) {
        const a = Math.abs(sal[k][i]) / smax;
        if (a < 0.05) continue;
        ctx.fillStyle = `rgba(230, 80, 0, ${(0.55 * a).toFixed(3)})`;
        ctx.fillRect(x + (i / beat.fs_hz) * mmPerS * px, r * cellH * px + 2 * px, (mmPerS * px) / beat.fs_hz + 0.5, (cellH - 4) * px);
      }
    }
    ctx.setLineDash([3, 3]); ctx.strokeStyle = "#2f6db5"; ctx.lineWidth = 0.8;
    for (const [name, ms] of Object.entries(fid)) {
      if (ms === null) continue;
      const xx = x + (ms / 1000) * mmPerS * px;
      ctx.beginPath(); ctx.moveTo(xx, r * cellH * px + 6 * px); ctx.lineTo(xx, (r + 1) * cellH * px - 2 * px); ctx.stroke();
    }
    ctx.setLineDash([]);
    const uv = beat.mv[k].map((v) => (v === null ? 0 : v * 1000));
    trace(ctx, uv, beat.fs_hz, 0, dur, x, yBase, px, mmPerS, mmPerMv);
    ctx.fillStyle = "#0b2a55"; ctx.font = "bold 12px system-ui, sans-serif"; ctx.fillText(LEADS[k], x + 3, (r * cellH + 5) * px);
  }
  const note = $("saliency-note");
  if (sal) note.textContent = "Orange: where the model's output is most sensitive (gradient saliency). Dashed: P onset, QRS onset/offset, T end.";
  else if (saliency && saliency.error) note.textContent = `Saliency could not be computed: ${saliency.error}`;
  else note.textContent = "Dashed lines: P onset, QRS onset, QRS offset, T end. Saliency heat map: not available with this installation (needs elvmass.explain).";
  const seg = $("segments"); seg.innerHTML = "";
  const shares = saliency && !saliency.error ? (saliency.segment_shares || saliency.segments) : null;
  if (shares) for (const [k, v] of Object.entries(shares)) {
    const d = document.createElement("span"); d.className = "seg";
    d.textContent = `${k.replace("_", "-").toUpperCase()}: ${fmt(100 * (typeof v === "number" ? v : v.share || 0))} %`; seg.appendChild(d);
  }
}

setupDrop();
loadModel();
