// Wallboard page: wires the connection to the board model and keeps the DOM in step.
//
// Rendering rules, because a wallboard runs for days on a cheap TV stick:
//  - deltas only mutate the model and mark it dirty; one requestAnimationFrame pass renders,
//    so a burst of 50 deltas costs one layout, not 50;
//  - lists are reconciled by key (uniqueid / interface / queue name): rows are moved, updated
//    in place or removed, never rebuilt, so nothing flickers and CSS transitions survive;
//  - ticking timers are separate: once a second only the [data-since] cells get new text.

import {
  applyDelta, emptyBoard, sortedQueueNames, earliestJoin, agentCounts, aggregateAgents,
  waitingCallers, abandonedCallers, thresholdsFor, levelHigherWorse, levelHigherBetter,
  callbacksOf, isCallable,
} from "./board.js";
import { WallboardConnection } from "./connection.js";
import { pickLanguage, makeI18n, duration } from "./i18n.js";

const params = new URLSearchParams(location.search);
const i18n = makeI18n(pickLanguage(params.get("lang"), navigator.languages || [navigator.language]));
const { t } = i18n;

// TV mode: ?rotate=S seconds per page, ?per_page=N queue tiles per page (else fit to width).
const TV_PAGE_MS = Math.max(2, Number(params.get("rotate")) || 10) * 1000;
const TV_PER_PAGE = Math.max(0, Math.floor(Number(params.get("per_page")) || 0));
const LEVEL_RANK = { none: 0, good: 1, warn: 2, bad: 3 };
// A booking the server never answered (socket lost meanwhile) gives the button back after this.
const CALLBACK_ACK_TIMEOUT_MS = 15000;

const S = {
  board: null,
  thresholds: {},
  labels: {},             // the tenant's names (snapshot "labels"): tenant, queues, pause_reasons
  // The PBX's clock as last told by the server, and performance.now() when it was: every
  // duration on the board is "PBX now − a PBX time", whatever the server's or this device's clock.
  clock: { base: null, at: 0 },
  conn: "connecting",
  connDetail: {},
  lastDataAt: null,     // local Date of the last snapshot/delta, for the "data as of" banner
  tv: params.get("tv") === "1",
  page: 0,
  rendered: false,      // after the first render, new rows get an entrance highlight
  callbackHandler: null, // a test/embedding override of the "call back" action
  features: {},           // what the server can do (snapshot "features"), e.g. callbacks
  callbacks: new Map(),   // "queue|number" -> {state: pending|ok|error, message, ref}
  nextRef: 1,
};

const $ = (sel) => document.querySelector(sel);
const els = {
  tenant: $("[data-testid=tenant-name]"),
  clock: $("[data-testid=clock]"),
  conn: $("[data-testid=conn-status]"),
  connLabel: $("[data-testid=conn-status] .conn-label"),
  banner: $("[data-testid=conn-banner]"),
  bannerText: $("[data-testid=conn-banner] .banner-text"),
  retry: $("[data-testid=conn-retry]"),
  tiles: $("[data-testid=queue-tiles]"),
  pager: $("[data-testid=tv-pager]"),
  agents: $("[data-testid=agent-board]"),
  agentsCount: $("[data-testid=agents-count]"),
  waiting: $("[data-testid=waiting-list]"),
  waitingCount: $("[data-testid=waiting-count]"),
  abandoned: $("[data-testid=abandoned-list]"),
  abandonedCount: $("[data-testid=abandoned-count]"),
  tvToggle: $("[data-testid=tv-toggle]"),
  agentsMore: $("[data-testid=agents-more]"),
  waitingMore: $("[data-testid=waiting-more]"),
  abandonedMore: $("[data-testid=abandoned-more]"),
  summary: $("[data-testid=summary]"),
};

// --------------------------------------------------------------------------- tiny DOM kit

/** Create an element: h("div.tile.big", {dataset:{x:1}}, child, "text"). */
function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v);
    }
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

/** Writes only on change: unchanged text must not cost a style recalculation. */
function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

function setAttr(el, name, value) {
  if (value === null || value === undefined) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, value);
  }
}

/**
 * Make container's children match items, by key. Existing rows are updated in place and
 * moved only when out of order; `create` runs for new keys only.
 */
function reconcile(container, items, keyOf, create, update) {
  const existing = new Map();
  for (const el of container.children) existing.set(el.dataset.key, el);
  const keep = new Set();
  let prev = null;
  for (const item of items) {
    const key = keyOf(item);
    keep.add(key);
    let el = existing.get(key);
    if (!el) {
      el = create(item);
      el.dataset.key = key;
      if (S.rendered) {
        el.classList.add("enter");
        el.addEventListener("animationend", () => el.classList.remove("enter"), { once: true });
      }
    }
    update(el, item);
    const want = prev ? prev.nextSibling : container.firstChild;
    if (el !== want) container.insertBefore(el, want);
    prev = el;
  }
  for (const [key, el] of existing) if (!keep.has(key)) el.remove();
}

// --------------------------------------------------------------------------- time

/** The PBX's time now (epoch seconds): its last reading, run forward on the monotonic clock.
 *  Before the first message, this device's clock (nothing is shown yet anyway). */
function pbxNow() {
  if (S.clock.base === null) return Date.now() / 1000;
  return S.clock.base + (performance.now() - S.clock.at) / 1000;
}

function setPbxClock(pbxTime) {
  const at = performance.now();
  if (S.clock.base !== null) {
    // A message that spent a little longer on the way must not make every timer step back.
    const current = S.clock.base + (at - S.clock.at) / 1000;
    if (pbxTime < current && current - pbxTime < 1) return;
  }
  S.clock = { base: pbxTime, at };
}

/** A cell whose text is "now − since", refreshed by tick(). Optional thresholds colour it. */
function setTimer(el, since, thresholds) {
  setAttr(el, "data-since", since === null || since === undefined ? null : since);
  if (thresholds) {
    setAttr(el, "data-amber", thresholds.amber);
    setAttr(el, "data-red", thresholds.red);
  }
  tickOne(el, pbxNow());
}

function tickOne(el, now) {
  const since = el.dataset.since;
  if (since === undefined) {
    setText(el, "–");
    if (el.dataset.amber !== undefined) setAttr(el, "data-level", "none");
    return;
  }
  const secs = now - Number(since);
  setText(el, duration(secs));
  // h:mm:ss is three characters wider than mm:ss; the big tile numbers shrink to fit it.
  setAttr(el, "data-long", secs >= 3600 ? "1" : null);
  if (el.dataset.amber !== undefined) {
    setAttr(el, "data-level", levelHigherWorse(secs, { amber: +el.dataset.amber, red: +el.dataset.red }));
  }
}

function tick() {
  const now = pbxNow();
  for (const el of document.querySelectorAll("[data-since], [data-amber]")) tickOne(el, now);
  // A tile's overall colour follows its longest wait, which changes with time alone.
  for (const tile of els.tiles.children) updateTileLevel(tile);
  // The PBX's time, like every timer: a clock beside "abandoned at 08:56" must agree with it.
  setText(els.clock, i18n.clock(new Date(now * 1000)));
}

function startTicking() {
  tick(); // no blank clock during the first second
  // Each tick is scheduled for just after the PBX clock's next whole second, so all timers and
  // the header clock flip together, and a re-anchored clock re-aligns by itself.
  const next = () => setTimeout(() => { tick(); next(); }, 1010 - ((pbxNow() * 1000) % 1000));
  next();
}

// --------------------------------------------------------------------------- queue tiles

/** The queue's display name where the tenant gave one, else its name without the tenant. */
function queueLabel(name) {
  const shown = S.labels.queues && S.labels.queues[name];
  if (shown) return shown;
  const tenant = S.board && S.board.tenant;
  return tenant && name.startsWith(`${tenant}-`) ? name.slice(tenant.length + 1) : name;
}

/** "1" when the tenant named the queue: shown as written, not capitalised like a slug. */
const named = (name) => (S.labels.queues && S.labels.queues[name] ? "1" : null);

function shortName(name) {
  const tenant = S.board && S.board.tenant;
  return tenant && name.startsWith(`${tenant}-`) ? name.slice(tenant.length + 1) : name;
}

/** A pause reason as the tenant labelled it (Asterisk reports the code). */
function pauseLabel(reason) {
  return (S.labels.pause_reasons && S.labels.pause_reasons[reason]) || reason;
}

function tenantLabel() {
  return S.labels.tenant || (S.board && S.board.tenant) || "";
}

function metric(cls, label) {
  const value = h("div.metric-value");
  const el = h(`div.metric.${cls}`, null, value, h("div.metric-label", { text: label }));
  return { el, value };
}

function createTile(name) {
  const r = {};
  r.title = h("h3.tile-title");
  r.sub = h("div.tile-sub");
  r.waiting = metric("m-waiting", t("waitingNow"));
  r.longest = metric("m-longest", t("longestWait"));
  r.slValue = h("div.gauge-value");
  r.gauge = h("div.gauge", null, r.slValue);
  r.slTarget = h("div.gauge-target");
  r.avail = h("span.count");
  r.busy = h("span.count");
  r.paused = h("span.count");
  r.asa = h("span.stat-value");
  r.answered = h("span.stat-value");
  r.abandoned = h("span.stat-value");
  r.abandonPct = h("span.stat-sub");
  const tile = h("article.tile", { "data-testid": `queue-tile-${name}` },
    h("header.tile-head", null, r.title, r.sub),
    h("div.tile-main", null,
      r.waiting.el,
      r.longest.el,
      h("div.metric.m-sl", null, r.gauge,
        h("div.metric-label", { text: t("serviceLevel") }), r.slTarget)),
    h("div.tile-agents", null,
      h("span.pill.st-available", { title: t("available") }, h("i.dot"), r.avail, h("span.pill-label", { text: t("available") })),
      h("span.pill.st-busy", { title: t("busy") }, h("i.dot"), r.busy, h("span.pill-label", { text: t("busy") })),
      h("span.pill.st-paused", { title: t("paused") }, h("i.dot"), r.paused, h("span.pill-label", { text: t("paused") }))),
    h("footer.tile-stats", null,
      h("div.stat", null, h("span.stat-label", { text: t("asa") }), r.asa),
      h("div.stat", null, h("span.stat-label", { text: t("answered") }), r.answered),
      h("div.stat", null, h("span.stat-label", { text: t("abandoned") }), r.abandoned, r.abandonPct)),
    createCallbacksLine(r));
  tile._r = r;
  r.waiting.value.dataset.testid = "waiting-count-value";
  r.longest.value.dataset.testid = "longest-wait-value";
  r.slValue.dataset.testid = "sl-value";
  return tile;
}

/** The tile's compact callbacks line: pending · in progress · at risk · overdue · on time today.
 *  Hidden until the bridge's callbacks have published a summary for the queue. */
function createCallbacksLine(r) {
  const count = (cls, testid, label) => {
    const value = h("b", { "data-testid": testid });
    return { el: h(`span.cb.${cls}`, null, value, h("span.cb-label", { text: label })), value };
  };
  r.cbPending = count("cb-pending", "callbacks-pending", t("cbPending"));
  r.cbProgress = count("cb-progress", "callbacks-in-progress", t("cbInProgress"));
  r.cbAtRisk = count("cb-at-risk", "callbacks-at-risk", t("cbAtRisk"));
  r.cbOverdue = count("cb-overdue", "callbacks-overdue", t("cbOverdue"));
  r.cbOnTime = h("b", { "data-testid": "callbacks-on-time" });
  r.callbacks = h("div.tile-callbacks", { "data-testid": "callbacks-line" },
    h("span.cb-title", { text: t("callbacks") }),
    r.cbPending.el, r.cbProgress.el, r.cbAtRisk.el, r.cbOverdue.el,
    h("span.cb.cb-ontime", null, h("span.cb-label", { text: t("cbOnTimeToday") }), r.cbOnTime));
  r.callbacks.hidden = true;
  return r.callbacks;
}

function updateCallbacksLine(r, summary) {
  r.callbacks.hidden = !summary;
  if (!summary) return;
  setText(r.cbPending.value, i18n.int(summary.pending ?? 0));
  setText(r.cbProgress.value, i18n.int(summary.in_progress ?? 0));
  // Near the end of their promised window, not late yet: being rushed now.
  const atRisk = summary.at_risk ?? 0;
  setText(r.cbAtRisk.value, i18n.int(atRisk));
  setAttr(r.cbAtRisk.el, "data-level", atRisk > 0 ? "warn" : "none");
  const overdue = summary.overdue ?? 0;
  setText(r.cbOverdue.value, i18n.int(overdue));
  setAttr(r.cbOverdue.el, "data-level", overdue > 0 ? "bad" : "none");
  const done = summary.completed_today ?? 0;
  const pct = summary.on_time_pct ?? null;
  setText(r.cbOnTime, done ? `${i18n.int(summary.on_time_today ?? 0)}/${i18n.int(done)} (${i18n.pct(pct)})` : "–");
  setAttr(r.cbOnTime, "data-level", pct === null ? "none" : pct >= 80 ? "good" : pct >= 60 ? "warn" : "bad");
}

function updateTile(tile, name) {
  const q = S.board.queues[name];
  const r = tile._r;
  const st = q.stats || {};
  const th = thresholdsFor(S.thresholds, name, st);
  setText(r.title, queueLabel(name));
  setAttr(r.title, "data-named", named(name));
  const label = queueLabel(name);
  setAttr(r.title, "title", name);
  setText(r.sub, [q.strategy, label.toLowerCase() !== shortName(name).toLowerCase() ? shortName(name) : ""]
    .filter(Boolean).join(" · "));

  const waiting = q.waiting.length;
  setText(r.waiting.value, i18n.int(waiting));
  const wl = levelHigherWorse(waiting, th.waiting);
  setAttr(r.waiting.el, "data-level", waiting === 0 ? "none" : wl);
  setTimer(r.longest.value, earliestJoin(q), th.longest_wait_s);

  const sl = st.sl_pct ?? null;
  setText(r.slValue, i18n.pct(sl));
  setAttr(r.gauge, "data-level", levelHigherBetter(sl, th.sl_pct));
  r.gauge.style.setProperty("--p", sl === null ? 0 : Math.max(0, Math.min(100, sl)));
  r.gauge.style.setProperty("--amber", th.sl_pct.amber);
  setText(r.slTarget, st.service_level_s ? t("slTarget", { s: i18n.int(st.service_level_s) }) : "");

  const c = agentCounts(q);
  setText(r.avail, i18n.int(c.available));
  setText(r.busy, i18n.int(c.busy));
  setText(r.paused, i18n.int(c.paused));
  setAttr(r.avail.parentElement, "data-zero", c.available === 0 ? "1" : null);

  setText(r.asa, st.asa_s === null || st.asa_s === undefined ? "–" : duration(st.asa_s));
  setText(r.answered, i18n.int(st.answered ?? 0));
  setText(r.abandoned, i18n.int(st.abandoned ?? 0));
  setText(r.abandonPct, st.abandon_pct === null || st.abandon_pct === undefined ? "" : i18n.pct(st.abandon_pct));

  updateCallbacksLine(r, callbacksOf(q));

  tile._levels = { waiting: waiting === 0 ? "none" : wl, sl: levelHigherBetter(sl, th.sl_pct) };
  updateTileLevel(tile);
}

/** The tile's frame colour is its worst metric: the one thing to see from across the room. */
function updateTileLevel(tile) {
  if (!tile._levels) return;
  const longest = tile._r.longest.value.dataset.level || "none";
  let worst = "none";
  for (const lv of [tile._levels.waiting, tile._levels.sl, longest]) {
    if (LEVEL_RANK[lv] > LEVEL_RANK[worst]) worst = lv;
  }
  setAttr(tile, "data-level", worst);
  setAttr(tile._r.longest.el, "data-level", longest);
}

// --------------------------------------------------------------------------- agents

function createAgent() {
  const r = {};
  r.name = h("div.agent-name");
  r.badge = h("span.badge");
  r.timer = h("span.agent-timer");
  r.reason = h("div.agent-reason");
  r.calls = h("span.agent-calls-value");
  // The name has the top line to itself: a long name, or Dutch "Gesprekken", must not cut it.
  const el = h("li.agent", null,
    h("div.agent-top", null, r.name),
    h("div.agent-bottom", null, r.badge,
      h("span.agent-meta", null,
        h("span.agent-calls", { title: t("callsToday") }, r.calls, h("span.agent-calls-label", { text: t("callsToday") })),
        r.timer)),
    r.reason);
  el._r = r;
  r.reason.dataset.testid = "agent-reason";
  r.badge.dataset.testid = "agent-state";
  return el;
}

function updateAgent(el, a) {
  const r = el._r;
  setAttr(el, "data-state", a.state);
  setAttr(el, "data-testid", `agent-${a.interface}`);
  setText(r.name, a.name);
  setAttr(r.name, "title", a.interface);
  setText(r.badge, t(`st.${a.state}`));
  setTimer(r.timer, a.since);
  setText(r.calls, i18n.int(a.calls_today));
  let reason = "";
  if (a.state === "paused") {
    reason = pauseLabel(a.paused_reason || "");
    if (a.queues.length > 1 && a.pausedIn < a.queues.length) {
      reason = [reason, t("pausedIn", { n: a.pausedIn, m: a.queues.length })].filter(Boolean).join(" · ");
    }
  }
  setText(r.reason, reason);
  r.reason.hidden = !reason;
}

// --------------------------------------------------------------------------- callers

function callerIdentity(c) {
  const number = h("span.caller-number");
  const name = h("span.caller-name");
  return { el: h("div.caller-id", null, name, number), number, name };
}

function setIdentity(r, c) {
  // Anonymous callers have an empty or "<unknown>" name; show the number prominently then.
  const name = c.name && c.name !== "<unknown>" && c.name !== c.number ? c.name : "";
  setText(r.name, name || c.number || t("unknown"));
  setText(r.number, name ? c.number : "");
}

function createWaiting() {
  const r = {};
  r.pos = h("span.pos");
  r.id = callerIdentity();
  r.queue = h("span.chip");
  r.wait = h("span.wait");
  const el = h("li.caller", null, r.pos, r.id.el, r.queue, r.wait);
  el._r = r;
  return el;
}

function updateWaiting(el, c) {
  const r = el._r;
  setAttr(el, "data-uniqueid", c.uniqueid);
  setAttr(el, "data-number", c.number);
  setText(r.pos, c.position);
  setIdentity(r.id, c);
  setText(r.queue, queueLabel(c.queue));
  setAttr(r.queue, "data-named", named(c.queue));
  const q = S.board.queues[c.queue];
  setTimer(r.wait, c.joined_at, thresholdsFor(S.thresholds, c.queue, q && q.stats).longest_wait_s);
}

/** Digits with a leading + (the callbacks' key for a number, model.normalise_number). */
const numberKey = (n) => (String(n).trim().startsWith("+") ? "+" : "") + String(n).replace(/\D/g, "");

// A callback's status (callbacks summary "numbers") -> [label key, level, may book another].
const CALLBACK_STATUS = {
  pending: ["ab.booked", "ok", false],
  overdue: ["ab.late", "warn", false],
  dialling: ["ab.calling", "ok", false],
  completed: ["ab.done", "good", false],
  no_answer: ["ab.notReached", "warn", true],
  busy: ["ab.notReached", "warn", true],
  failed: ["ab.notReached", "warn", true],
  expired: ["ab.notReached", "warn", true],
  cancelled: ["ab.cancelled", "none", true],
  unconfirmed: ["ab.unconfirmed", "warn", false],
};

/** What became of an abandoned caller: {key, level, callable}. Reached later beats a callback
 *  status, which beats "short abandon" (such callers get no button: they hung up at once). */
function abandonStatus(a) {
  if (a.reached_at !== undefined) return { key: "ab.reached", level: "good", callable: false };
  const q = S.board.queues[a.queue];
  const cb = callbacksOf(q);
  const status = cb && cb.numbers && isCallable(a.number) ? cb.numbers[numberKey(a.number)] : undefined;
  if (status && CALLBACK_STATUS[status]) {
    const [key, level, callable] = CALLBACK_STATUS[status];
    return { key, level, callable };
  }
  const short = q && q.stats && q.stats.short_abandon_s;
  if (short && a.waited_s < short) return { key: "ab.short", level: "none", callable: false };
  return { key: null, level: "none", callable: true };
}

function createAbandoned() {
  const r = {};
  r.id = callerIdentity();
  r.status = h("span.ab-status", { "data-testid": "abandon-status" });
  r.id.el.append(r.status);
  r.queue = h("span.chip");
  r.waited = h("span.waited");
  r.when = h("span.when");
  // Shown only when the server can book callbacks (snapshot features) and the caller left a
  // number; window.__wallboard.enableCallback(fn) may install another handler.
  r.callback = h("button.callback", { type: "button", "data-action": "callback", "data-testid": "callback-button" });
  r.callback.hidden = true;
  r.cbStatus = h("div.callback-status", { "data-testid": "callback-status", role: "status" });
  r.cbStatus.hidden = true;
  const el = h("li.caller.abandoned", null, r.id.el, r.queue,
    h("span.abandon-times", null, r.waited, r.when), r.callback, r.cbStatus);
  el._r = r;
  return el;
}

function updateAbandoned(el, a) {
  const r = el._r;
  setAttr(el, "data-uniqueid", a.uniqueid);
  setAttr(el, "data-number", a.number);
  setAttr(el, "data-queue", a.queue);
  setAttr(r.callback, "data-number", a.number);
  setAttr(r.callback, "data-uniqueid", a.uniqueid);
  setAttr(r.callback, "data-queue", a.queue);
  setIdentity(r.id, a);
  setText(r.queue, queueLabel(a.queue));
  setAttr(r.queue, "data-named", named(a.queue));
  setText(r.waited, duration(a.waited_s));
  setAttr(r.waited, "title", t("waited"));
  setText(r.when, i18n.time(a.at));
  const st = abandonStatus(a);
  setText(r.status, st.key ? t(st.key) : "");
  r.status.hidden = !st.key;
  setAttr(el, "data-status", st.key ? st.key.slice(3) : null);
  setAttr(r.status, "data-level", st.level);
  const can = callbacksAvailable() && isCallable(a.number) && st.callable;
  r.callback.hidden = !can;
  const booking = S.callbacks.get(callbackKey(a.queue, a.number));
  const pending = booking !== undefined && booking.state === "pending";
  r.callback.disabled = pending;
  setAttr(r.callback, "aria-busy", pending ? "true" : null);
  setText(r.callback, pending ? t("cbBooking") : t("callBack"));
  const shown = can && booking !== undefined && booking.state !== "pending";
  r.cbStatus.hidden = !shown;
  setAttr(r.cbStatus, "data-ok", shown ? (booking.state === "ok" ? "1" : "0") : null);
  setText(r.cbStatus, shown ? booking.message : "");
}

// --------------------------------------------------------------------------- callbacks

const callbackKey = (queue, number) => `${queue}|${number}`;

function callbacksAvailable() {
  return Boolean(S.callbackHandler || (S.features && S.features.callbacks));
}

/** Ask the server to book a callback; the row shows "booking…" until its callback.ack. */
function requestCallback(conn, caller) {
  const key = callbackKey(caller.queue, caller.number);
  const current = S.callbacks.get(key);
  if (current && current.state === "pending") return;
  const ref = `cb${S.nextRef++}`;
  const booking = { state: "pending", message: "", ref };
  S.callbacks.set(key, booking);
  conn.send({ type: "callback", queue: caller.queue, number: caller.number, ref });
  booking.timer = setTimeout(() => {
    if (S.callbacks.get(key) !== booking || booking.state !== "pending") return;
    S.callbacks.set(key, { state: "error", message: t("cbNoAnswer") });
    scheduleRender();
  }, CALLBACK_ACK_TIMEOUT_MS);
  scheduleRender();
}

function onCallbackAck(msg) {
  let key = null;
  for (const [k, b] of S.callbacks) if (b.ref !== undefined && b.ref === msg.ref) key = k;
  if (key === null && msg.queue && msg.number) key = callbackKey(msg.queue, msg.number);
  if (key === null) return;
  clearTimeout((S.callbacks.get(key) || {}).timer);
  // A booking is confirmed in the page's language; a refusal (already open, not allowed,
  // server trouble) is the server's own explanation.
  S.callbacks.set(key, { state: msg.ok ? "ok" : "error",
    message: msg.ok ? t("cbBooked") : (msg.message || t("cbFailed")), id: msg.id ?? null });
  scheduleRender();
}

// --------------------------------------------------------------------------- layout & paging

// A TV tile needs this many rem across for its numbers and the SL ring side by side. TV type
// scales with the screen, so a 16:9 screen of any size gets the same number of tiles.
const TV_TILE_MIN_REM = 27;

function tvPageSize() {
  if (TV_PER_PAGE) return TV_PER_PAGE;
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
  return Math.max(1, Math.min(4, Math.floor(window.innerWidth / (TV_TILE_MIN_REM * rem))));
}

/**
 * TV mode: a TV cannot scroll, so a list shows the rows that fit its panel and a "+N more" line
 * for the rest. Rows are hidden from the first one that would cross the list's bottom edge
 * (in a grid, that is the first of its row, so whole rows go). Outside TV mode every row shows.
 */
function fitList(list, more) {
  for (const el of list.children) if (el.hidden) el.hidden = false;
  more.hidden = true;
  if (!S.tv || !list.children.length) return;
  const overflows = (el) => el.getBoundingClientRect().bottom > list.getBoundingClientRect().bottom + 0.5;
  const rows = [...list.children];
  if (!overflows(rows[rows.length - 1])) return;
  // The "+N more" line takes room from the list, so measure again once it shows.
  setText(more, t("more", { n: i18n.int(rows.length) }));
  more.hidden = false;
  let first = rows.findIndex(overflows);
  if (first < 0) first = rows.length - 1;
  for (let i = first; i < rows.length; i++) rows[i].hidden = true;
  setText(more, t("more", { n: i18n.int(rows.length - first) }));
}

function fitLists() {
  fitList(els.agents, els.agentsMore);
  fitList(els.waiting, els.waitingMore);
  fitList(els.abandoned, els.abandonedMore);
}

function visibleQueues() {
  const all = sortedQueueNames(S.board);
  if (!S.tv) return { names: all, page: 0, pages: 1 };
  const size = tvPageSize();
  const pages = Math.max(1, Math.ceil(all.length / size));
  const page = S.page % pages;
  return { names: all.slice(page * size, page * size + size), page, pages };
}

function renderPager(v) {
  els.pager.hidden = v.pages <= 1;
  if (v.pages <= 1) return;
  const dots = Array.from({ length: v.pages }, (_, i) => i);
  reconcile(els.pager, dots, String, () => h("span.pager-dot"), (el, i) => {
    el.classList.toggle("active", i === v.page);
  });
  setAttr(els.pager, "title", t("page", { i: v.page + 1, n: v.pages }));
  setAttr(els.pager, "data-page", v.page + 1);
}

function renderSummary(names) {
  // Tenant-wide headline numbers for the top bar: what a supervisor checks first.
  let waiting = 0;
  let earliest = null;
  for (const n of names) {
    const q = S.board.queues[n];
    waiting += q.waiting.length;
    const e = earliestJoin(q);
    if (e !== null && (earliest === null || e < earliest)) earliest = e;
  }
  const agents = aggregateAgents(S.board, names);
  const available = agents.filter((a) => a.state === "available").length;
  const r = els.summary._r;
  setText(r.waiting, i18n.int(waiting));
  setAttr(r.waitingBox, "data-level", waiting === 0 ? "none" : levelHigherWorse(waiting, { amber: 3, red: 6 }));
  setTimer(r.longest, earliest);
  setText(r.available, i18n.int(available));
  // Nobody available is never "good": red while callers wait, neutral otherwise.
  setAttr(r.available.parentElement, "data-level", available > 0 ? null : waiting > 0 ? "bad" : "none");
}

function setupSummary() {
  const r = {};
  r.waiting = h("b");
  r.longest = h("b");
  r.available = h("b");
  r.waitingBox = h("span.sum", null, r.waiting, h("span", { text: t("waitingNow") }));
  els.summary.append(r.waitingBox,
    h("span.sum", null, r.longest, h("span", { text: t("longestWait") })),
    h("span.sum.sum-available", null, r.available, h("span", { text: t("available") })));
  els.summary._r = r;
}

// --------------------------------------------------------------------------- render

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function render() {
  if (!S.board) return;
  const tenant = tenantLabel();
  setText(els.tenant, tenant);
  setAttr(els.tenant, "title", S.board.tenant || null);
  document.title = `${tenant ? tenant + " · " : ""}${t("title")}`;
  const v = visibleQueues();
  renderPager(v);
  const allNames = sortedQueueNames(S.board);
  renderSummary(allNames);

  reconcile(els.tiles, v.names, (n) => n, createTile, updateTile);
  els.tiles.dataset.empty = v.names.length ? "" : t("noQueues");
  els.tiles.style.setProperty("--tiles", Math.max(1, v.names.length));

  const agents = aggregateAgents(S.board, v.names);
  const present = agents.filter((a) => a.state !== "logged_out");
  const loggedOut = agents.length - present.length;
  reconcile(els.agents, present, (a) => a.interface, createAgent, updateAgent);
  els.agents.dataset.empty = t("noAgents");
  setText(els.agentsCount, [t("agentsSummary", { n: i18n.int(present.length) }),
    loggedOut ? t("loggedOutHidden", { n: i18n.int(loggedOut) }) : ""].filter(Boolean).join(" · "));

  const waiting = waitingCallers(S.board, v.names);
  reconcile(els.waiting, waiting, (c) => `${c.queue}|${c.uniqueid}`, createWaiting, updateWaiting);
  els.waiting.dataset.empty = t("noWaiting");
  setText(els.waitingCount, i18n.int(waiting.length));

  const abandoned = abandonedCallers(S.board, v.names);
  reconcile(els.abandoned, abandoned, (a) => `${a.queue}|${a.uniqueid}|${a.at}`, createAbandoned, updateAbandoned);
  els.abandoned.dataset.empty = t("noAbandoned");
  setText(els.abandonedCount, i18n.int(abandoned.length));

  fitLists();
  S.rendered = true;
}

function renderConnection() {
  const { conn, connDetail } = S;
  els.conn.dataset.state = conn;
  let label = t(`conn.${conn}`, { s: connDetail.seconds ?? "" });
  if (conn === "offline" && connDetail.seconds) label = `${t("conn.offline")} · ${connDetail.seconds} s`;
  setText(els.connLabel, label);
  document.body.dataset.conn = conn;

  let banner = "";
  if (conn === "unauthorised") banner = t(connDetail.code === 4403 ? "err.4403" : "err.4401");
  else if (conn === "offline") banner = t("err.offline");
  else if (conn === "reconnecting" && S.lastDataAt) banner = t("asOf", { t: i18n.clock(S.lastDataAt) });
  els.banner.hidden = !banner;
  els.banner.dataset.kind = conn;
  setText(els.bannerText, banner);
  els.retry.hidden = conn !== "unauthorised" && conn !== "reconnecting" && conn !== "offline";
  if (S.tv) scheduleRender(); // the banner takes height from the lists: fit them again
}

// --------------------------------------------------------------------------- TV mode

let pageTimer = null;
let wakeLock = null;

function applyTv() {
  document.documentElement.classList.toggle("tv", S.tv);
  setText(els.tvToggle, S.tv ? t("exitTv") : t("tv"));
  setAttr(els.tvToggle, "aria-pressed", S.tv ? "true" : "false");
  clearInterval(pageTimer);
  if (S.tv) {
    pageTimer = setInterval(() => { S.page++; scheduleRender(); }, TV_PAGE_MS);
    // Keep the screen awake where supported; a wallboard that dims itself is useless.
    if (navigator.wakeLock) navigator.wakeLock.request("screen").then((l) => { wakeLock = l; }, () => {});
  } else if (wakeLock) {
    wakeLock.release().catch(() => {});
    wakeLock = null;
  }
  // Remember the mode in the URL, so a reload (or a TV reboot) comes back the same way.
  const url = new URL(location.href);
  if (S.tv) url.searchParams.set("tv", "1"); else url.searchParams.delete("tv");
  history.replaceState(null, "", url);
  S.page = 0;
  // Reconnect-free relayout: tiles per page depends on the mode.
  for (const el of [els.tiles, els.agents, els.waiting, els.abandoned]) el.replaceChildren();
  S.rendered = false;
  scheduleRender();
}

function requestFullscreen() {
  const el = document.documentElement;
  if (!document.fullscreenElement && el.requestFullscreen) el.requestFullscreen().catch(() => {});
}

function setupTv() {
  els.tvToggle.addEventListener("click", () => {
    S.tv = !S.tv;
    // Fullscreen needs a user gesture; this click is one.
    if (S.tv) requestFullscreen();
    else if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    applyTv();
  });
  if (S.tv && document.fullscreenEnabled) {
    // Opened with ?tv=1: the browser goes fullscreen only on a user gesture, so the first click
    // anywhere does it. No "click here" pill: nothing may cover the board on a wall.
    document.addEventListener("click", requestFullscreen, { once: true });
  }
  // Escape leaves TV mode, for a keyboard with no mouse to reveal the button.
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && S.tv) els.tvToggle.click(); });
  // Hide the cursor (and in TV mode the TV button) on an idle screen; a mouse move shows them.
  let idleTimer = null;
  document.addEventListener("mousemove", () => {
    document.body.classList.remove("idle");
    document.body.classList.add("pointer");
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      document.body.classList.add("idle");
      document.body.classList.remove("pointer");
    }, 3000);
  });
  window.addEventListener("resize", () => { if (S.tv) scheduleRender(); });
  applyTv();
}

// --------------------------------------------------------------------------- wiring

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const q = new URLSearchParams();
  q.set("token", params.get("token") || "");
  if (params.get("queues")) q.set("queues", params.get("queues"));
  return `${scheme}//${location.host}/ws/wallboard?${q}`;
}

function applyStaticLabels() {
  document.documentElement.lang = i18n.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) setText(el, t(el.dataset.i18n));
}

function main() {
  applyStaticLabels();
  setupSummary();
  setupTv();

  const conn = new WallboardConnection(wsUrl(), {
    onClock(pbxTime) {
      setPbxClock(pbxTime);
    },
    onSnapshot(msg) {
      S.board = msg.board || emptyBoard(msg.tenant);
      S.thresholds = msg.thresholds || {};
      S.labels = msg.labels || {};
      S.features = msg.features || {};
      S.lastDataAt = new Date();
      scheduleRender();
    },
    onDelta(msg) {
      const delta = msg.delta;
      if (!delta || !S.board) return;
      // snapshot.rewritten is bookkeeping on the server side; it changes nothing we show.
      if (delta.type !== "snapshot.rewritten") applyDelta(S.board, delta);
      S.lastDataAt = new Date();
      scheduleRender();
    },
    onStatus(state, detail) {
      S.conn = state;
      S.connDetail = detail;
      renderConnection();
    },
    onReply(msg) {
      if (msg.type === "callback.ack") onCallbackAck(msg);
    },
  });
  els.retry.addEventListener("click", () => conn.connectNow());

  els.abandoned.addEventListener("click", (ev) => {
    const btn = ev.target.closest("button[data-action=callback]");
    if (!btn || btn.disabled || !callbacksAvailable()) return;
    const caller = { uniqueid: btn.dataset.uniqueid, number: btn.dataset.number, queue: btn.dataset.queue };
    if (S.callbackHandler) S.callbackHandler(caller);
    else requestCallback(conn, caller);
  });

  // Debug/test surface. Getters, so a console user always sees the live values.
  window.__wallboard = {
    get board() { return S.board; },
    get seq() { return conn.seq; },
    get state() { return S.conn; },
    get thresholds() { return S.thresholds; },
    get labels() { return S.labels; },
    get features() { return S.features; },
    get callbacks() { return Object.fromEntries([...S.callbacks].map(([k, b]) => [k, { state: b.state, message: b.message }])); },
    get stats() { return conn.stats; },
    get tv() { return S.tv; },
    get page() { return visibleQueues(); },
    pbxNow,
    enableCallback(fn) {
      S.callbackHandler = fn;
      scheduleRender();
    },
    reconnect: () => conn.forceReconnect(),
  };

  startTicking();
  conn.open();
}

main();
