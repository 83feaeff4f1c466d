// The oiforge web page: drop or choose a photo, POST it to /v1/predict, draw the top-k bars
// (a multi-label model: first every label at or above its threshold, as chips).
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const key = $("apikey").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function drawLabels(prediction) {
  const box = $("labels");
  box.replaceChildren();
  if (!prediction.labels) return;
  const head = document.createElement("div");
  head.className = "labels-head";
  head.textContent = prediction.labels.length
    ? "Labels at or above their thresholds:"
    : "No label reaches its threshold.";
  box.append(head);
  for (const score of prediction.labels) {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.textContent = score.name + " " + (score.probability * 100).toFixed(0) + "%";
    chip.title = score.mid;
    box.append(chip);
  }
}

function drawBars(prediction) {
  const bars = $("bars");
  bars.replaceChildren();
  drawLabels(prediction);
  const above = new Set((prediction.labels || []).map((s) => s.index));
  for (const score of prediction.top_k) {
    const row = document.createElement("div");
    row.className = above.has(score.index) ? "row above" : "row";
    const label = document.createElement("div");
    label.className = "label";
    const name = document.createElement("span");
    name.textContent = score.name;
    name.title = score.mid;
    const pct = document.createElement("span");
    pct.textContent = (score.probability * 100).toFixed(1) + "%";
    label.append(name, pct);
    const track = document.createElement("div");
    track.className = "track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (score.probability * 100).toFixed(2) + "%";
    track.append(bar);
    row.append(label, track);
    bars.append(row);
  }
}

async function classify(file) {
  if (!file) return;
  const preview = $("preview");
  preview.src = URL.createObjectURL(file);
  preview.style.display = "block";
  setStatus("classifying " + file.name + "…", false);
  const form = new FormData();
  form.append("image", file, file.name);
  form.append("top_k", $("topk").value);
  try {
    const resp = await fetch("/v1/predict", { method: "POST", body: form, headers: headers() });
    const body = await resp.json();
    if (!resp.ok) {
      $("bars").replaceChildren();
      $("labels").replaceChildren();
      setStatus(body.error ? body.error.message : "error " + resp.status, true);
      return;
    }
    drawBars(body.predictions[0]);
    setStatus(file.name + ": " + body.latency_ms.toFixed(0) + " ms", false);
  } catch (err) {
    setStatus("request failed: " + err, true);
  }
}

async function loadModel() {
  try {
    const resp = await fetch("/v1/model", { headers: headers() });
    const body = await resp.json();
    const multi = resp.ok && body.task === "multilabel";
    $("model").textContent = resp.ok
      ? body.name + " · " + body.architecture + " · " + body.classes.length + " classes" +
        (multi ? " · multi-label" : "") + " · v" + body.version
      : (body.error ? body.error.message : "model unavailable");
    if (multi) $("question").textContent = "Which Open Images classes are in it?";
  } catch (err) {
    $("model").textContent = "model unavailable: " + err;
  }
}

const drop = $("drop");
drop.addEventListener("click", () => $("file").click());
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
$("file").addEventListener("change", (e) => classify(e.target.files[0]));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  classify(e.dataTransfer.files[0]);
});
$("apikey").addEventListener("change", loadModel);
loadModel();
