// oiforge browse: the grid, filter sidebar, class tree, detail view and curation actions.
// The whole view lives in the URL's query string (history.pushState), so every view can be
// linked, reloaded, and walked with back/forward.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 100, ROW = 190;
const GRID_KEYS = ["cls", "split", "dl", "ex", "flags", "src", "cmin", "cmax", "rv", "q", "page"];
const KEYS = [...GRID_KEYS, "img", "mode", "find", "boxes"];
const DEFAULTS = {cmin: "0", cmax: "1", page: "0"};
const FLAG_NAMES = {is_occluded: "occluded", is_truncated: "truncated", is_group_of: "group of",
                    is_depiction: "depiction", is_inside: "inside"};
let view = {}, shown = {}, data = null, current = 0, anchor = null, ownLoaded = false;
const picked = new Set();
const known = {split: new Set(), dl: new Set()};
const undoStack = JSON.parse(sessionStorage.getItem("oiforge-undo") || "[]");

// ---------------------------------------------------------------- helpers
async function api(path, body) {
  const init = body ? {method: "POST", headers: {"content-type": "application/json"},
                       body: JSON.stringify(body)} : {};
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { json = null; }
  if (!res.ok) throw new Error((json && json.error) || text || res.statusText);
  return json;
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function link(text, href) {
  if (!href || !/^https?:\/\//.test(href)) return el("span", "", text);
  const a = el("a", "", text); a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer";
  return a;
}
function say(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }
const fmt = (n) => Number(n).toLocaleString("en-US");
const failed = (img) => !["ok", "not downloaded"].includes(img.download);

// ---------------------------------------------------------------- URL state
function readUrl() {
  const p = new URLSearchParams(location.search), v = {};
  for (const k of KEYS) if (p.get(k)) v[k] = p.get(k);
  const m = location.pathname.match(/^\/class\/(.+)$/);
  if (m && !v.cls) v.cls = decodeURIComponent(m[1]);
  return v;
}
function urlOf(v) {
  const p = new URLSearchParams();
  for (const k of KEYS) if (v[k] !== undefined && v[k] !== "" && v[k] !== DEFAULTS[k]) p.set(k, v[k]);
  const s = p.toString();
  return "/" + (s ? "?" + s : "");
}
async function go(changes, replace) {
  const next = {...view, ...changes};
  if (!("page" in changes) && GRID_KEYS.some((k) => k in changes)) delete next.page;
  for (const k of Object.keys(next)) if (next[k] === "" || next[k] == null) delete next[k];
  const url = urlOf(next);
  if (url !== location.pathname + location.search) history[replace ? "replaceState" : "pushState"](null, "", url);
  await render(next);
}
window.addEventListener("popstate", () => render(readUrl()));
const gridKey = (v) => GRID_KEYS.map((k) => v[k] || "").join("|");

async function render(v) {
  const before = shown;
  view = v; shown = v;
  syncControls();
  document.body.classList.toggle("hide-boxes", v.boxes === "0");
  document.body.classList.toggle("reviewing", v.mode === "review");
  try {
    // the grid first: the sidebar's requests wait for it, so they never slow its paint
    if (gridKey(v) !== gridKey(before) || !data) await loadGrid();
    const work = [];
    if ((v.cls || "") !== (before.cls || "") || !$("tree").childElementCount) work.push(loadTree(v.cls || ""));
    if ((v.find || "") !== (before.find || "")) work.push(findClasses(v.find || ""));
    if (!ownLoaded) { ownLoaded = true; work.push(loadOwn()); }
    await Promise.all([showDetail(v.img), ...work]);
  } catch (e) { say(e.message, true); }
}
function syncControls() {
  for (const s of document.querySelectorAll("[data-key]")) {
    const want = view[s.dataset.key] || DEFAULTS[s.dataset.key] || "";
    if (s.tagName === "SELECT" && want && ![...s.options].some((o) => o.value === want)) s.append(new Option(want, want));
    if (document.activeElement !== s) s.value = want;
  }
  const flags = (view.flags || "").split(",");
  for (const c of document.querySelectorAll("#f-flags input")) c.checked = flags.includes(c.value);
  if (document.activeElement !== $("q")) $("q").value = view.q || "";
  if (document.activeElement !== $("find")) $("find").value = view.find || "";
  $("boxes").checked = view.boxes !== "0";
  $("review").checked = view.mode === "review";
}

// ---------------------------------------------------------------- grid
async function loadGrid() {
  const p = new URLSearchParams({size: PAGE});
  for (const k of GRID_KEYS) if (view[k]) p.set(k, view[k]);
  const fresh = await api("/api/images?" + p);
  if (gridKey(view) !== gridKey(shown)) return;
  data = fresh;
  picked.clear(); anchor = null;
  current = Math.min(current, Math.max(data.images.length - 1, 0));
  drawFacets(data.facets);
  drawGrid();
  drawChips();
  drawPager();
  requestAnimationFrame(() => { window.oiforgeGridPaint = performance.now(); });
}
function drawGrid() {
  $("grid").replaceChildren(...data.images.map(tile));
  if (!data.images.length) $("grid").append(el("p", "muted", "No image matches these filters."));
  mark();
}
function tile(img, i) {
  const w = img.width || 4, h = img.height || 3;
  const t = el("div", "tile" + (img.excluded ? " excluded" : ""));
  t.dataset.id = img.image_id;
  t.style.flex = `${w / h} 1 ${Math.round(ROW * w / h)}px`;
  const pic = picture(img, `/thumb/${img.image_id}.jpg`, true);
  const box = el("input", "pick"); box.type = "checkbox"; box.title = "select (shift: a range)";
  box.setAttribute("aria-label", `select ${img.image_id}`);
  box.onclick = (ev) => { ev.stopPropagation(); pick(i, ev.shiftKey); };
  t.append(box, pic, caption(img, i));
  t.onclick = (ev) => {
    if (ev.shiftKey || ev.ctrlKey || ev.metaKey) { pick(i, ev.shiftKey); return; }
    current = i; mark(); go({img: img.image_id});
  };
  return t;
}
function picture(img, src, lazy) {
  const w = img.width || 4, h = img.height || 3;
  const pic = el("div", "pic");
  pic.style.aspectRatio = `${w} / ${h}`;
  if (failed(img)) pic.append(missing(img.download, img.error));
  else {
    const im = new Image();
    if (lazy) im.loading = "lazy";
    im.decoding = "async";
    im.alt = img.title || img.image_id;
    im.onerror = () => im.replaceWith(missing(img.download === "ok" ? "not in the store" : img.download, ""));
    im.onload = () => { if (!img.width) pic.style.aspectRatio = `${im.naturalWidth} / ${im.naturalHeight}`; };
    im.src = src;
    pic.append(im);
  }
  for (const b of img.boxes) pic.append(boxEl(b));
  return pic;
}
function missing(status, error) {
  const m = el("div", "missing");
  m.append(el("strong", "", status === "not downloaded" ? "not downloaded" : `download failed: ${status}`));
  if (error) m.append(el("span", "", error.slice(0, 120)));
  return m;
}
function boxEl(b) {
  const cls = "box" + (b.excluded ? " excluded" : b.flags.length ? " flagged" : "");
  const d = el("div", cls);
  Object.assign(d.style, {left: `${b.x_min * 100}%`, top: `${b.y_min * 100}%`,
    width: `${(b.x_max - b.x_min) * 100}%`, height: `${(b.y_max - b.y_min) * 100}%`});
  const flags = b.flags.map((f) => FLAG_NAMES[f]).join(", ");
  d.title = `${b.label} (box ${b.index})${flags ? " · " + flags : ""}${b.excluded ? " · excluded" : ""}`;
  d.append(el("span", "", b.label));
  return d;
}
function caption(img, i) {
  const c = el("div", "cap");
  for (const l of img.labels.slice(0, 3)) {
    const machine = l.source === "machine";
    if (l.role === "negative") {  // a person verified the photo does not show it
      const chip = el("span", "chip neg", `not ${l.name}`);
      chip.title = `${l.name} · verified absent`;
      c.append(chip);
      continue;
    }
    const chip = el("span", "chip" + (l.review === "rejected" ? " bad" : l.review === "confirmed" ? " good" : machine ? " warn" : ""),
      machine ? `${l.name} ${l.confidence ?? ""}` : l.name);
    chip.title = `${l.name} · ${l.source || "?"}${l.review ? " · " + l.review : ""}`;
    c.append(chip);
  }
  if (img.labels.length > 3) c.append(el("span", "chip", `+${img.labels.length - 3}`));
  const flagged = new Set(img.boxes.flatMap((b) => b.flags));
  if (flagged.size) c.append(el("span", "chip warn", [...flagged].map((f) => FLAG_NAMES[f]).join(", ")));
  if (img.download !== "ok") c.append(el("span", "chip bad", img.download));
  if (img.excluded) c.append(el("span", "chip bad", "excluded"));
  c.append(el("span", "id", img.image_id));
  const rv = el("span", "rvbtns");
  const yes = el("button", "", "✓"), no = el("button", "", "✗");
  yes.title = "confirm (c)"; no.title = "reject (r)";
  yes.onclick = (ev) => { ev.stopPropagation(); current = i; review("confirmed", [img]); };
  no.onclick = (ev) => { ev.stopPropagation(); current = i; review("rejected", [img]); };
  rv.append(yes, no); c.append(rv);
  return c;
}
function mark() {
  document.querySelectorAll("#grid .tile").forEach((t, i) => {
    t.classList.toggle("current", i === current);
    t.classList.toggle("picked", picked.has(t.dataset.id));
    t.querySelector(".pick").checked = picked.has(t.dataset.id);
  });
  $("picked").textContent = `${picked.size} selected`;
}
function pick(i, range) {
  const ids = data.images.map((g) => g.image_id);
  if (range && anchor !== null) {
    const [a, b] = [Math.min(anchor, i), Math.max(anchor, i)];
    for (let k = a; k <= b; k++) picked.add(ids[k]);
  } else if (picked.has(ids[i])) picked.delete(ids[i]);
  else picked.add(ids[i]);
  anchor = i; current = i; mark();
}

// ---------------------------------------------------------------- sidebar
function options(select, names, counts, label) {
  const keep = select.value;
  const first = select.options[0];
  const opts = [...names].sort().map((n) => new Option(`${label(n)} (${fmt(counts[n] || 0)})`, n));
  select.replaceChildren(first, ...opts);
  select.value = keep;
}
function drawFacets(f) {
  for (const k of ["split", "dl"]) for (const n of Object.keys(f[k])) known[k].add(n);
  options($("f-split"), known.split, f.split, (n) => n);
  const failures = [...known.dl].filter((n) => n !== "ok" && n !== "not downloaded");
  const nfail = failures.reduce((s, n) => s + (f.dl[n] || 0), 0);
  const dlNames = new Set(known.dl);
  if (failures.length) dlNames.add("failed");
  options($("f-dl"), dlNames, {...f.dl, failed: nfail},
          (n) => n === "failed" ? "failed (any reason)" : n === "ok" ? "downloaded" : n);
  const box = $("f-flags"), flags = (view.flags || "").split(",");
  box.replaceChildren(el("legend", "", "Box flags (a box with all of)"), ...Object.entries(f.flags).map(([name, n]) => {
    const lab = el("label"), c = el("input");
    c.type = "checkbox"; c.value = name; c.checked = flags.includes(name);
    c.onchange = () => go({flags: [...box.querySelectorAll("input:checked")].map((x) => x.value).join(",")});
    lab.append(c, `${FLAG_NAMES[name]} (${fmt(n)})`);
    return lab;
  }));
  syncControls();
}
function drawChips() {
  const names = {split: "split", dl: "download", ex: "excluded", flags: "flags", src: "source",
                 cmin: "confidence ≥", cmax: "confidence ≤", rv: "review", q: "text"};
  const chips = [];
  if (view.cls && data.class) chips.push(["cls", `class: ${data.class.name} + sub-classes`]);
  for (const [k, n] of Object.entries(names)) if (view[k] && view[k] !== DEFAULTS[k]) chips.push([k, `${n}: ${view[k]}`]);
  $("chips").replaceChildren(...chips.map(([k, text]) => {
    const b = el("button", "", text + " ✕"); b.type = "button"; b.title = "remove this filter";
    b.onclick = () => go({[k]: ""});
    return b;
  }));
}
function drawPager() {
  const page = Number(view.page || 0), pages = Math.max(1, Math.ceil(data.total / PAGE));
  const a = data.total ? page * PAGE + 1 : 0, b = Math.min(data.total, (page + 1) * PAGE);
  $("count").textContent = `${fmt(a)}–${fmt(b)} of ${fmt(data.total)} images` +
    (data.total !== data.all ? ` (${fmt(data.all)} in the selection)` : "");
  $("pageno").value = page + 1; $("pageno").max = pages;
  $("pages").textContent = `of ${fmt(pages)}`;
  $("prev").disabled = page <= 0; $("next").disabled = page >= pages - 1;
}
function classItem(c, onclick) {
  const li = el("li", c.mid === view.cls ? "on" : "");
  li.dataset.mid = c.mid;
  li.append(el("span", "", c.name));
  if (c.kind === "part") li.append(el("span", "chip", "part"));
  if (c.match) li.append(el("span", "chip accent", c.match));
  if (c.images !== undefined) li.append(el("span", "n" + (c.images ? "" : " zero"), fmt(c.images)));
  li.onclick = onclick || (() => go({cls: c.mid, img: ""}));
  li.title = `${c.mid}${c.images !== undefined ? ` · ${c.images} images in this selection` : ""}`;
  return li;
}
async function loadTree(mid) {
  const node = await api("/api/tree?mid=" + encodeURIComponent(mid));
  const crumbs = [];
  if (mid) {
    const all = el("a", "", "all classes"); all.onclick = () => go({cls: ""}); crumbs.push(all);
    for (const p of node.parents.filter((p) => p.name !== "Entity" && p.mid !== "/m/0bl9f")) {
      const a = el("a", "", p.name); a.onclick = () => go({cls: p.mid}); crumbs.push(" · ", a);
    }
  }
  $("crumbs").replaceChildren(...crumbs);
  const items = mid ? [classItem(node, () => {})] : [];
  const kids = [...node.children].sort((a, b) => b.images - a.images || a.name.localeCompare(b.name));
  const empty = kids.filter((c) => !c.images);
  for (const c of kids) {
    const li = classItem(c);
    if (mid) li.style.paddingLeft = "1.2rem";
    if (!c.images) li.classList.add("empty");
    items.push(li);
  }
  if (empty.length) {
    const more = el("li", "more muted", `${empty.length} more ${mid ? "sub-" : ""}classes with no image here`);
    more.onclick = () => { $("tree").classList.add("show-empty"); more.remove(); };
    items.push(more);
  }
  $("tree").classList.remove("show-empty");
  $("tree").replaceChildren(...items);
}
async function loadOwn() {
  const sel = await api("/api/selection");
  $("own").replaceChildren(...sel.classes.map((c) => classItem(c)));
  $("ownbox").open = sel.classes.length <= 12;
}
async function findClasses(text) {
  $("found").hidden = !text.trim();
  if (!text.trim()) return;
  const hits = await api("/api/classes?q=" + encodeURIComponent(text));
  $("hits").replaceChildren(...hits.map((h) => classItem(h)));
  if (!hits.length) $("hits").append(el("li", "muted", "no class matches"));
}

// ---------------------------------------------------------------- detail view
async function showDetail(id) {
  const box = $("detail");
  if (!id) { box.hidden = true; return; }
  let img = data && data.images.find((g) => g.image_id === id);
  if (!img) img = await api("/api/image/" + encodeURIComponent(id));
  if (data) { const i = data.images.indexOf(img); if (i >= 0) { current = i; mark(); } }
  box.hidden = false;
  const pic = picture(img, `/img/${img.image_id}.jpg`, false);
  const w = img.width || 4, h = img.height || 3;
  pic.id = "d-pic";
  pic.style.width = `min(100%, calc((100vh - 3rem) * ${w / h}))`;
  $("d-pic").replaceWith(pic);
  $("d-title").textContent = img.title || img.image_id;
  $("d-x").textContent = img.excluded ? "Include" : "Exclude";
  $("d-body").replaceChildren(...detailBody(img));
  $("d-close").focus({preventScroll: true});
}
function row(dl, name, ...value) { dl.append(el("dt", "", name)); const d = el("dd"); d.append(...value); dl.append(d); }
function detailBody(img) {
  const facts = el("dl");
  row(facts, "ImageID", el("code", "", img.image_id));
  row(facts, "Split", img.split);
  row(facts, "Download", img.download + (img.error ? ` (${img.error})` : ""));
  if (img.excluded) row(facts, "Excluded", el("span", "bad", img.excluded));
  const who = el("dl");
  row(who, "Photo", link(img.title || "(untitled)", img.landing_url), img.landing_url ? " (Flickr page)" : "");
  row(who, "Author", link(img.author || "unknown", img.author_profile_url));
  row(who, "Licence", link(img.license_name, img.license));
  if (img.original_url) row(who, "Original", link("full-size file", img.original_url));
  const labels = el("table");
  labels.append(headRow("Class", "Source", "Review"));
  for (const l of img.labels) {
    const tr = el("tr");
    const negative = l.role === "negative";
    tr.append(el("td", negative ? "neg" : "", negative ? `not ${l.name}` : l.name),
      el("td", "", negative ? "verified absent" : l.source + (l.source === "machine" ? ` ${l.confidence}` : "")));
    const td = el("td");
    for (const [v, t] of [["confirmed", "✓"], ["rejected", "✗"]]) {
      const b = el("button", "", t); b.title = v === "confirmed" ? "confirm (c)" : "reject (r)";
      if (l.review === v) b.className = v === "confirmed" ? "primary" : "danger";
      b.onclick = () => sendReview([{image_id: img.image_id, mid: l.mid, verdict: l.review === v ? "" : v}]);
      td.append(b, " ");
    }
    tr.append(td); labels.append(tr);
  }
  const parts = [facts, el("h3", "", "Labels"), labels];
  if (img.boxes.length) {
    const boxes = el("table");
    boxes.append(headRow("#", "Class", "Flags", ""));
    for (const b of img.boxes) {
      const tr = el("tr"), td = el("td"), x = el("button", "", b.excluded ? "include" : "exclude");
      x.onclick = () => exclusion([{image_id: img.image_id, box: b.index}], !b.excluded);
      td.append(x);
      tr.append(el("td", "n", b.index), el("td", "", b.label),
                el("td", "", b.flags.map((f) => FLAG_NAMES[f]).join(", ")), td);
      boxes.append(tr);
    }
    parts.push(el("h3", "", "Boxes"), boxes);
  }
  parts.push(el("h3", "", "Attribution"), who);
  return parts;
}
function headRow(...names) { const tr = el("tr"); tr.append(...names.map((n) => el("th", "", n))); return tr; }
async function step(delta) {
  if (!data || !data.images.length) return;
  const i = data.images.findIndex((g) => g.image_id === view.img);
  let j = (i < 0 ? current : i) + delta;
  const page = Number(view.page || 0);
  if (j >= 0 && j < data.images.length) return go({img: data.images[j].image_id}, true);
  const next = page + (j < 0 ? -1 : 1);
  if (next < 0 || next * PAGE >= data.total) return;
  current = j < 0 ? PAGE - 1 : 0;
  await go({page: String(next)}, true);
  j = Math.min(current, data.images.length - 1);
  await go({img: data.images[j].image_id}, true);
}

// ---------------------------------------------------------------- curation
function remember(kind, items) {
  undoStack.push({kind, items});
  sessionStorage.setItem("oiforge-undo", JSON.stringify(undoStack.slice(-200)));
}
function targets() {
  if (view.img) return data.images.filter((g) => g.image_id === view.img);
  const chosen = data.images.filter((g) => picked.has(g.image_id));
  return chosen.length ? chosen : data.images.slice(current, current + 1);
}
async function refresh() {
  const keep = view.img;
  data = null;
  await render({...view});
  if (keep) await showDetail(keep);
}
async function exclusion(items, on) {
  try {
    const body = {items, reason: $("reason").value || "excluded in browse"};
    const res = await api(on ? "/api/exclude" : "/api/undo", body);
    remember("ex", res.previous);
    say(`${on ? "excluded" : "included"} ${items.length} ${items.length === 1 ? "item" : "items"}`);
    await refresh();
  } catch (e) { say(e.message, true); }
}
function toggleExclude() {
  const imgs = targets();
  if (!imgs.length) return;
  const on = !imgs.every((g) => g.excluded);
  return exclusion(imgs.map((g) => ({image_id: g.image_id})), on);
}
function reviewLabels(img) {
  const inClass = data.class_mids ? img.labels.filter((l) => data.class_mids.includes(l.mid)) : img.labels;
  const machine = inClass.filter((l) => l.source === "machine");
  return machine.length ? machine : inClass;
}
async function sendReview(items) {
  try {
    const res = await api("/api/review", {items});
    remember("rv", res.previous);
    say(`${items[0].verdict || "cleared"}: ${items.length} ${items.length === 1 ? "label" : "labels"}`);
    await refresh();
  } catch (e) { say(e.message, true); }
}
function review(verdict, imgs) {
  const items = (imgs || targets()).flatMap((g) => reviewLabels(g).map((l) => ({image_id: g.image_id, mid: l.mid, verdict})));
  if (!items.length) return say("no label to review here");
  if (!view.img && !picked.size) current = Math.min(current + (view.rv ? 0 : 1), PAGE - 1);
  return sendReview(items);
}
async function undoLast() {
  const last = undoStack.pop();
  sessionStorage.setItem("oiforge-undo", JSON.stringify(undoStack));
  if (!last) return say("nothing to undo");
  try {
    if (last.kind === "ex") await api("/api/excludes", {items: last.items});
    else await api("/api/review", {items: last.items});
    say(`undid ${last.items.length} ${last.kind === "ex" ? "exclusion" : "review"} change(s)`);
    await refresh();
  } catch (e) { say(e.message, true); }
}

// ---------------------------------------------------------------- wiring
function onKey(ev) {
  if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName) && ev.target.type !== "checkbox") {
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey || !data) return;
  const open = !$("detail").hidden, n = data.images.length;
  const k = ev.key;
  if (open && ["ArrowRight", "j"].includes(k)) step(1);
  else if (open && ["ArrowLeft", "k"].includes(k)) step(-1);
  else if (open && k === "Escape") go({img: ""});
  else if (["ArrowRight", "j"].includes(k)) { current = Math.min(current + 1, n - 1); mark(); }
  else if (["ArrowLeft", "k"].includes(k)) { current = Math.max(current - 1, 0); mark(); }
  else if ((k === "Enter" || k === "o") && data.images[current]) go({img: data.images[current].image_id});
  else if (k === " " && !open) pick(current, ev.shiftKey);
  else if (k === "a" && !open) { data.images.forEach((g) => picked.add(g.image_id)); mark(); }
  else if (k === "Escape") { picked.clear(); mark(); }
  else if (k === "x") toggleExclude();
  else if (k === "c") review("confirmed");
  else if (k === "r") review("rejected");
  else if (k === "u") undoLast();
  else if (k === "b") go({boxes: view.boxes === "0" ? "" : "0"}, true);
  else if (k === "]" && !$("next").disabled) go({page: String(Number(view.page || 0) + 1)});
  else if (k === "[" && !$("prev").disabled) go({page: String(Number(view.page || 0) - 1)});
  else return;
  ev.preventDefault();
  const t = document.querySelectorAll("#grid .tile")[current];
  if (t && !open) t.scrollIntoView({block: "nearest"});
}
function wire() {
  document.addEventListener("keydown", onKey);
  for (const s of document.querySelectorAll("[data-key]")) s.addEventListener("change", () => go({[s.dataset.key]: s.value}));
  let timer;
  $("find").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => go({find: $("find").value}, true), 150); });
  $("findform").addEventListener("submit", (ev) => { ev.preventDefault(); const first = $("hits").querySelector("li[data-mid]"); if (first) first.click(); });
  $("q").addEventListener("change", () => go({q: $("q").value}));
  $("boxes").onchange = () => go({boxes: $("boxes").checked ? "" : "0"}, true);
  $("review").onchange = () => go($("review").checked
    ? {mode: "review", src: view.src || "machine", rv: view.rv || "unreviewed"} : {mode: "", rv: ""});
  $("clear").onclick = () => go(Object.fromEntries(GRID_KEYS.map((k) => [k, ""])));
  $("all").onclick = () => { data.images.forEach((g) => picked.add(g.image_id)); mark(); };
  $("none").onclick = () => { picked.clear(); mark(); };
  $("exclude").onclick = () => { const t = targets(); exclusion(t.map((g) => ({image_id: g.image_id})), true); };
  $("include").onclick = () => { const t = targets(); exclusion(t.map((g) => ({image_id: g.image_id})), false); };
  $("confirm").onclick = () => review("confirmed");
  $("reject").onclick = () => review("rejected");
  $("undo").onclick = undoLast;
  $("prev").onclick = () => go({page: String(Number(view.page || 0) - 1)});
  $("next").onclick = () => go({page: String(Number(view.page || 0) + 1)});
  $("pageno").onchange = () => go({page: String(Math.max(0, Number($("pageno").value) - 1))});
  $("d-prev").onclick = () => step(-1);
  $("d-next").onclick = () => step(1);
  $("d-close").onclick = () => go({img: ""});
  $("d-x").onclick = toggleExclude;
  $("detail").addEventListener("click", (ev) => { if (ev.target === $("detail")) go({img: ""}); });
  $("menu").onclick = () => { const open = document.body.classList.toggle("menu-open"); $("menu").setAttribute("aria-expanded", String(open)); };
}
wire();
render(readUrl());
