// oiforge present: keyboard and click navigation, speaker notes, scale to the window.
(() => {
  "use strict";
  const slides = Array.from(document.querySelectorAll(".slide"));
  const deck = document.getElementById("deck");
  const count = document.getElementById("count");
  const panel = document.getElementById("notes-panel");
  const toggle = document.getElementById("notes-toggle");
  let current = 0;

  function fit() {
    const scale = Math.min(window.innerWidth / 1920, window.innerHeight / 1080);
    deck.style.transform = `translate(-50%, -50%) scale(${scale})`;
  }

  function show(n) {
    current = Math.max(0, Math.min(slides.length - 1, n));
    slides.forEach((s, i) => s.classList.toggle("current", i === current));
    count.textContent = `${current + 1} / ${slides.length}`;
    document.body.dataset.current = String(current);
    const notes = slides[current].querySelector(".notes");
    panel.innerHTML = notes ? notes.innerHTML : "";
    if (location.hash !== `#${slides[current].id}`) {
      history.replaceState(null, "", `#${slides[current].id}`);
    }
  }

  function setNotes(on) {
    panel.hidden = !on;
    toggle.setAttribute("aria-pressed", String(on));
  }

  const NEXT = ["ArrowRight", "ArrowDown", "PageDown", " ", "Enter", "l", "j"];
  const PREV = ["ArrowLeft", "ArrowUp", "PageUp", "Backspace", "h", "k"];
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (NEXT.includes(e.key)) show(current + 1);
    else if (PREV.includes(e.key)) show(current - 1);
    else if (e.key === "Home") show(0);
    else if (e.key === "End") show(slides.length - 1);
    else if (e.key === "n" || e.key === "N") setNotes(panel.hidden);
    else return;
    e.preventDefault();
  });
  deck.addEventListener("click", (e) => {
    if (e.target.closest("a, button, summary, pre, code")) return;
    show(e.clientX < window.innerWidth / 4 ? current - 1 : current + 1);
  });
  document.getElementById("prev").addEventListener("click", () => show(current - 1));
  document.getElementById("next").addEventListener("click", () => show(current + 1));
  toggle.addEventListener("click", () => setNotes(panel.hidden));
  window.addEventListener("resize", fit);
  window.addEventListener("hashchange", () => {
    const at = slides.findIndex((s) => `#${s.id}` === location.hash);
    if (at >= 0 && at !== current) show(at);
  });
  const start = slides.findIndex((s) => `#${s.id}` === location.hash);
  fit();
  show(start >= 0 ? start : 0);
})();
