"use strict";
const $ = (id) => document.getElementById(id);
let images = [], current = 0;
// the undo history lives in sessionStorage: it survives a reload of this tab
const history = JSON.parse(sessionStorage.getItem("oiforge-undo") || "[]");
const remember = (item) => { history.push(item); sessionStorage.setItem("oiforge-undo", JSON.stringify(history.slice(-500))); };

async function api(path, body) {
  const init = body ? {method: "POST", headers: {"content-type": "application/json"},
                       body: JSON.stringify(body)} : {};
  const res = await fetch(path, init);
  if (!res.ok) throw new Error((await res.text()) || res.statusText);
  return res.json();
}
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function say(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

async function search() {
  const hits = await api("/api/classes?q=" + encodeURIComponent($("search").value));
  $("hits").replaceChildren(...hits.map((h) => {
    const li = el("li", `${h.name} (${h.mid})${h.boxable ? " · boxable" : ""} · ${h.positives} images, ${h.boxes} boxes`);
    li.dataset.mid = h.mid;
    li.onclick = () => showTree(h.mid);
    return li;
  }));
}

function treeItem(node) {
  const li = el("li");
  li.dataset.mid = node.mid;
  const t = el("span", node.has_children ? "▸" : "·", "toggle");
  li.append(t, el("span", node.name + " ", "name"));
  if (node.kind) li.append(el("span", node.kind === "part" ? "part" : "", "kind"));
  if (node.has_children) t.onclick = () => expand(li, t);
  return li;
}
async function expand(li, toggle) {
  const open = li.querySelector(":scope > ul");
  if (open) { open.remove(); toggle.textContent = "▸"; return; }
  const node = await api("/api/tree?mid=" + encodeURIComponent(li.dataset.mid));
  const ul = el("ul");
  ul.append(...node.children.map(treeItem));
  li.append(ul);
  toggle.textContent = "▾";
}
async function showTree(mid) {
  const node = await api("/api/tree?mid=" + encodeURIComponent(mid));
  const ps = node.parents.map((p) => p.name).join(", ");
  $("parents").textContent = ps ? `Parents: ${ps}` : "";
  const root = treeItem({...node, has_children: node.children.length > 0});
  $("tree").replaceChildren(root);
  if (node.children.length) await expand(root, root.querySelector(".toggle"));
  const opt = [...$("f-class").options].find((o) => o.value === node.name);
  if (opt) { $("f-class").value = node.name; await loadGrid(); }
}

function card(img, i) {
  const c = el("div", undefined, "card" + (img.status === "excluded" ? " excluded" : ""));
  c.dataset.id = img.image_id;
  const pic = el("div", undefined, "pic");
  const im = el("img"); im.src = `/img/${img.image_id}.jpg`; im.alt = img.title || img.image_id;
  pic.append(im);
  for (const b of img.boxes) {
    const bx = el("div", undefined, "box" + (String(b.index) in img.excluded_boxes ? " excluded" : ""));
    Object.assign(bx.style, {left: `${b.x_min * 100}%`, top: `${b.y_min * 100}%`,
      width: `${(b.x_max - b.x_min) * 100}%`, height: `${(b.y_max - b.y_min) * 100}%`});
    bx.title = `${b.label} box ${b.index} (click: exclude/undo this box)`;
    bx.onclick = (ev) => { ev.stopPropagation(); toggleBox(img, b.index); };
    pic.append(bx);
  }
  const link = el("a", img.title || "(untitled)"); link.href = img.landing_url || "#"; link.target = "_blank";
  const attr = el("div", undefined, "attr"); attr.append(link);
  c.append(pic, el("div", `${img.classes.join(", ")} · ${img.split} · ${img.download}`),
           attr, el("div", `by ${img.author || "unknown"}`, "attr"),
           el("div", img.license || "", "attr"),
           el("div", img.status === "excluded" ? `excluded: ${img.reason}` : "", "why"));
  const btn = el("button", img.status === "excluded" ? "undo" : "exclude", "act");
  btn.onclick = (ev) => { ev.stopPropagation(); current = i; toggle(img); };
  c.append(btn);
  c.onclick = () => { current = i; mark(); };
  return c;
}
async function loadGrid() {
  const q = new URLSearchParams({cls: $("f-class").value, split: $("f-split").value,
                                 status: $("f-status").value});
  const data = await api("/api/images?" + q);
  const sel = $("f-class"), have = new Set([...sel.options].map((o) => o.value));
  for (const n of data.classes) if (!have.has(n)) sel.append(new Option(n, n));
  images = data.images;
  current = Math.min(current, Math.max(images.length - 1, 0));
  $("grid").replaceChildren(...images.map(card));
  $("count").textContent = `${images.length} of ${data.total} images`;
  mark();
}
function mark() {
  document.querySelectorAll(".card").forEach((c, i) => c.classList.toggle("current", i === current));
}
async function post(path, body) {
  try { await api(path, body); await loadGrid(); } catch (e) { say(String(e.message), true); }
}
async function toggle(img) {
  if (img.status === "excluded") { remember({img: img.image_id, box: null, undo: true}); return post("/api/undo", {image_id: img.image_id}); }
  remember({img: img.image_id, box: null});
  await post("/api/exclude", {image_id: img.image_id, reason: $("reason").value});
  say(`excluded ${img.image_id}`);
}
async function toggleBox(img, box) {
  const off = String(box) in img.excluded_boxes;
  remember({img: img.image_id, box, undo: off});
  await post(off ? "/api/undo" : "/api/exclude", {image_id: img.image_id, box, reason: $("reason").value});
}
async function undoLast() {
  const last = history.pop();
  sessionStorage.setItem("oiforge-undo", JSON.stringify(history));
  if (!last) return say("nothing to undo");
  const body = {image_id: last.img, box: last.box, reason: $("reason").value};
  await post(last.undo ? "/api/exclude" : "/api/undo", body);
  say(`undid ${last.img}`);
}
document.addEventListener("keydown", (ev) => {
  if (["INPUT", "SELECT"].includes(ev.target.tagName)) return;
  if (ev.key === "j" || ev.key === "ArrowRight") { current = Math.min(current + 1, images.length - 1); mark(); }
  else if (ev.key === "k" || ev.key === "ArrowLeft") { current = Math.max(current - 1, 0); mark(); }
  else if (ev.key === "x" && images[current]) toggle(images[current]);
  else if (ev.key === "u") undoLast();
});
let timer;
$("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 150); });
for (const id of ["f-class", "f-split", "f-status"]) $(id).onchange = loadGrid;
const m = location.pathname.match(/^\/class\/(.+)$/);
loadGrid().then(() => m ? showTree(decodeURIComponent(m[1])) : showTree(""));
