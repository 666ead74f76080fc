// The routing atlas's script: layer and run selectors, the hover card, the
// training slider, and a self-test (URL fragment #selftest) that switches
// the layer and writes what it saw into <pre id="selftest">.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("atlas-data").textContent);
  const $ = (id) => document.getElementById(id);
  const all = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // Colours: each span's class is its top-1 expert in the selected block.
  function setLayer(block) {
    for (const run of all("#tokens .run")) {
      const slot = run.dataset.layers.split(" ").indexOf(String(block));
      for (const t of all("span.t", run)) {
        t.className = slot < 0 ? "t none" : "t e" + (Number(t.dataset.e.split(" ")[slot]) % 16);
      }
      for (const l of all(".legend", run)) l.hidden = l.dataset.layer !== String(block);
    }
  }

  // Two runs side by side: their excerpts move from the store into the columns.
  function showRuns() {
    const a = $("run-a").value, b = $("run-b").value;
    for (const run of all("#tokens .run")) $("store").appendChild(run);
    const pick = (i) => document.querySelector('#store .run[data-run="' + i + '"]');
    $("col-a").appendChild(pick(a));
    if (b !== a) $("col-b").appendChild(pick(b));
    document.querySelector(".columns").classList.toggle("single", b === a);
    for (const h of all(".by-run")) h.hidden = h.dataset.run !== a && h.dataset.run !== b;
  }

  // The hover and focus card.
  function showTip(t) {
    const run = t.closest(".run");
    const blocks = run.dataset.layers.split(" ");
    const [e, p, h] = ["e", "p", "h"].map((k) => t.dataset[k].split(" "));
    const tip = $("tip");
    tip.textContent = "";
    const line = (text, cls) => {
      const d = document.createElement("div");
      d.textContent = text;
      if (cls) d.className = cls;
      tip.appendChild(d);
    };
    line(JSON.stringify(t.textContent) + "  (token id " + t.dataset.i + ")");
    blocks.forEach((b, s) =>
      line("block " + b + ": expert " + e[s] + ", p = " + p[s] + ", router entropy " + h[s] + " nats",
        b === $("layer").value ? "sel" : ""));
    const r = t.getBoundingClientRect();
    tip.style.left = Math.min(r.left, window.innerWidth - 370) + "px";
    tip.style.top = (r.bottom + 6 > window.innerHeight - 120 ? r.top - 110 : r.bottom + 6) + "px";
    tip.hidden = false;
  }
  const tokens = $("tokens");
  for (const ev of ["mouseover", "focusin"]) {
    tokens.addEventListener(ev, (x) => { if (x.target.matches("span.t")) showTip(x.target); });
  }
  for (const ev of ["mouseout", "focusout"]) {
    tokens.addEventListener(ev, (x) => { if (x.target.matches("span.t")) $("tip").hidden = true; });
  }

  // The training slider: each bar shows its run's last log at or before the step.
  function setStep(index) {
    const step = data.steps[index];
    $("step-value").textContent = step;
    for (const bar of all(".bar")) {
      const run = data.runs[Number(bar.dataset.run)];
      const layer = run.layers[Number(bar.dataset.slot)];
      let row = -1;
      while (row + 1 < layer.steps.length && layer.steps[row + 1] <= step) row++;
      const shares = row < 0 ? [] : layer.shares[row];
      all("span", bar).forEach((s, e) => { s.style.width = (100 * (shares[e] || 0)).toFixed(2) + "%"; });
      const cap = document.querySelector('.cap[data-run="' + bar.dataset.run + '"][data-slot="' + bar.dataset.slot + '"]');
      if (row < 0) cap.textContent = "no log yet";
      else {
        const max = Math.max(...shares);
        const stopped = run.stop !== null && step > layer.steps[row] ? "; stopped at step " + run.stop : "";
        cap.textContent = "step " + layer.steps[row] + ": largest share " + (100 * max).toFixed(1) + "%" + stopped;
      }
    }
  }

  if ($("layer")) {
    $("layer").addEventListener("change", () => setLayer($("layer").value));
    $("run-a").addEventListener("change", showRuns);
    $("run-b").addEventListener("change", showRuns);
    showRuns();
    setLayer($("layer").value);
  }
  if ($("step")) $("step").addEventListener("input", () => setStep(Number($("step").value)));

  // The self-test the browser test reads.
  if (location.hash === "#selftest") {
    const spans = all("span.t");
    const colours = () => spans.map((s) => getComputedStyle(s).backgroundColor);
    const before = colours();
    const options = $("layer") ? all("option", $("layer")).map((o) => o.value) : [];
    let changed = 0;
    if (options.length > 1) {
      $("layer").value = options[1];
      $("layer").dispatchEvent(new Event("change"));
      changed = colours().filter((c, i) => c !== before[i]).length;
    }
    if ($("step")) { $("step").value = "0"; $("step").dispatchEvent(new Event("input")); }
    const tip = spans.length ? (spans[0].focus(), $("tip").hidden ? "" : $("tip").textContent) : "";
    // The planted document's tags, written as \u003c so the page's own
    // source holds neither.
    const text = all(".tokens").map((p) => p.textContent).join("\n");
    $("selftest").textContent = JSON.stringify({
      spans: spans.length,
      layers: options.length,
      changed: changed,
      planted_script_as_text: text.includes("\u003c/script>"),
      planted_img_as_text: text.includes("\u003cimg"),
      images: document.images.length,
      tip: tip,
      errors: window.atlasErrors,
    });
  }
})();
