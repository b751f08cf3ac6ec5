// Measures the wallboard as a viewer sees it (tests/e2e/test_wallboard_tv.py): returns
// { problems: [...], lists: {name: {rows, shown, more, total}} }.
(boxesSelector) => {
  const visible = (el) => {
    if (el.closest("[hidden]")) return false;
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && cs.visibility !== "hidden" && cs.display !== "none";
  };
  const name = (el) => `${el.className}${el.dataset.testid ? "#" + el.dataset.testid : ""}`
    + `(${el.textContent.trim().slice(0, 20)})`;
  const problems = [];
  const vw = window.innerWidth, vh = window.innerHeight;
  const doc = document.documentElement;
  if (doc.scrollHeight > vh) problems.push(`page is ${doc.scrollHeight}px tall on a ${vh}px screen`);
  if (doc.scrollWidth > vw) problems.push(`page is ${doc.scrollWidth}px wide on a ${vw}px screen`);
  const boxes = [...document.querySelectorAll(boxesSelector)].filter(visible)
    .map((el) => ({ el, r: el.getBoundingClientRect() }));
  for (const { el, r } of boxes) {
    if (r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5) {
      problems.push(`${name(el)} is off the screen`);
    }
    // Clipped by its panel or list (a TV shows a row whole or not at all).
    const clip = el.parentElement && el.parentElement.closest(".panel .list, .agent-grid, .panel");
    if (clip) {
      const c = clip.getBoundingClientRect();
      if (r.bottom > c.bottom + 0.5 || r.right > c.right + 0.5) problems.push(`${name(el)} is cut off by ${clip.className}`);
    }
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
      const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
      const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
      if (w > 0.5 && h > 0.5) problems.push(`${name(a.el)} overlaps ${name(b.el)}`);
    }
  }
  // Text that does not fit its box: numbers and timers must never be cut.
  for (const el of document.querySelectorAll(".caller-number, .wait, .waited, .when, .metric-value, .gauge-value, .agent-timer, .pos")) {
    if (visible(el) && el.scrollWidth > el.clientWidth + 0.5) problems.push(`${name(el)} is cut (${el.scrollWidth} > ${el.clientWidth})`);
  }
  // What a tile is for must be there: waiting count, longest wait and service level.
  for (const tile of document.querySelectorAll(".tile")) {
    for (const id of ["waiting-count-value", "longest-wait-value", "sl-value"]) {
      const el = tile.querySelector(`[data-testid=${id}]`);
      if (!el || !visible(el) || !el.textContent.trim()) problems.push(`${name(tile)}: no visible ${id}`);
    }
  }
  // Nothing to click on a wall.
  for (const el of document.querySelectorAll("button, a[href], input, select, [role=button]")) {
    if (visible(el)) problems.push(`${name(el)} is an interactive control on a TV`);
  }
  const lists = {};
  for (const [list, more, count] of [["agent-board", "agents-more", null],
                                     ["waiting-list", "waiting-more", "waiting-count"],
                                     ["abandoned-list", "abandoned-more", "abandoned-count"]]) {
    const rows = [...document.querySelector(`[data-testid=${list}]`).children];
    const shown = rows.filter(visible).length;
    const moreEl = document.querySelector(`[data-testid=${more}]`);
    const m = visible(moreEl) ? Number(moreEl.textContent.replace(/[^0-9]/g, "")) : 0;
    lists[list] = { rows: rows.length, shown, more: m,
                    total: count ? Number(document.querySelector(`[data-testid=${count}]`).textContent) : rows.length };
  }
  return { problems, lists };
}
