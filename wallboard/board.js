// The board model: the browser's copy of pbx_core/domain/board.py plus the read-only
// derivations the wallboard shows. Pure functions only (no DOM, no clock reads), so the e2e
// suite can run them in the browser against the Python reducer's output and demand equality.

export const ABANDONED_LIST_MAX = 500;
export const CALLBACKS_SUMMARY = "callbacks.summary";

// Agent states ordered from most to least "engaged". An agent who is a member of several
// queues has one row on the board; it shows the most engaged of its per-queue states.
// Paused ranks above available on purpose: a pause that holds in only some queues is exactly
// what a supervisor wants to notice, and would be hidden if "available" won.
export const STATE_RANK = ["on_call", "ringing", "wrapup", "paused", "available", "unavailable", "logged_out"];
const BUSY_STATES = new Set(["ringing", "on_call", "wrapup"]);

export function emptyBoard(tenant) {
  return { tenant, queues: {} };
}

export function emptyQueue(tenant, queue) {
  return { queue, tenant, strategy: "", stats: {}, waiting: [], members: [], abandoned_callers: [] };
}

function renumber(waiting) {
  waiting.forEach((caller, i) => { caller.position = i + 1; });
}

/**
 * Apply one delta (bus form: {v, type, tenant, queue, ts, data}) to a board, in place.
 * Mirrors board.apply_delta rule for rule, including its quirks (an unknown type still creates
 * the queue entry), because the tests compare the two reducers' output byte for byte.
 */
export function applyDelta(board, delta) {
  const kind = delta.type;
  const name = delta.queue;
  const data = delta.data;
  const queues = board.queues;
  if (kind === "queue.resynced") {
    const old = queues[name];
    queues[name] = data;
    // The engine's resync knows nothing of callbacks (the callbacks worker owns them): keep the
    // last summary rather than blanking it until the worker's next one.
    if (old !== undefined && "callbacks" in old && !("callbacks" in data)) data.callbacks = old.callbacks;
    return;
  }
  if (kind === "queue.removed") {
    delete queues[name];
    return;
  }
  if (kind === "tenant.removed") {
    for (const n of Object.keys(queues)) delete queues[n];
    return;
  }
  let q = queues[name];
  if (q === undefined) q = queues[name] = emptyQueue(delta.tenant, name);
  if (kind === "queue.stats") {
    q.stats = data;
  } else if (kind === "caller.joined") {
    const waiting = q.waiting.filter((c) => c.uniqueid !== data.uniqueid);
    // Python's list.insert clamps an index past the end; splice does the same.
    waiting.splice(Math.max(0, data.position - 1), 0, { ...data });
    renumber(waiting);
    q.waiting = waiting;
  } else if (kind === "caller.left") {
    const waiting = q.waiting.filter((c) => c.uniqueid !== data.uniqueid);
    renumber(waiting);
    q.waiting = waiting;
  } else if (kind === "caller.abandoned") {
    q.abandoned_callers.unshift(data);
    q.abandoned_callers.length = Math.min(q.abandoned_callers.length, ABANDONED_LIST_MAX);
  } else if (kind === "caller.answered") {
    // A caller who hung up earlier and got through now: their abandoned rows say so.
    const number = data.number;
    if (typeof number === "string" && /\d/.test(number)) {
      for (const a of q.abandoned_callers) {
        if (a.number === number && !("reached_at" in a) && a.at <= delta.ts) a.reached_at = delta.ts;
      }
    }
  } else if (kind === CALLBACKS_SUMMARY) {
    q.callbacks = data;
  } else if (kind === "agent.removed") {
    q.members = q.members.filter((m) => m.interface !== data.interface);
  } else if (kind.startsWith("agent.")) {
    const i = q.members.findIndex((m) => m.interface === data.interface);
    if (i >= 0) q.members[i] = data;
    else q.members.push(data);
  }
}

// --------------------------------------------------------------------------- derivations

export function sortedQueueNames(board) {
  return Object.keys(board.queues).filter((n) => n).sort();
}

/** Earliest join among waiting callers, or null: the live "longest wait" ticks from it. */
export function earliestJoin(queue) {
  let earliest = null;
  for (const c of queue.waiting) if (earliest === null || c.joined_at < earliest) earliest = c.joined_at;
  return earliest;
}

/** Available / busy / paused agent counts of one queue (busy = ringing + on call + wrap-up). */
export function agentCounts(queue) {
  const counts = { available: 0, busy: 0, paused: 0, loggedIn: 0 };
  for (const m of queue.members) {
    if (m.state === "available") counts.available++;
    else if (BUSY_STATES.has(m.state)) counts.busy++;
    else if (m.state === "paused") counts.paused++;
    if (m.state !== "logged_out") counts.loggedIn++;
  }
  return counts;
}

/**
 * One row per agent interface across the given queues. The shown state, its `since` and the
 * pause reason come from the most engaged membership; calls today are summed, because
 * Asterisk counts a call in the queue that delivered it.
 */
export function aggregateAgents(board, queueNames) {
  const byInterface = new Map();
  for (const qn of queueNames) {
    const q = board.queues[qn];
    if (!q) continue;
    for (const m of q.members) {
      let a = byInterface.get(m.interface);
      if (!a) {
        a = { interface: m.interface, name: m.name, state: m.state, since: m.since,
              paused_reason: "", calls_today: 0, queues: [], pausedIn: 0 };
        byInterface.set(m.interface, a);
      }
      a.calls_today += m.calls_today || 0;
      if (m.state !== "logged_out") a.queues.push(qn);
      if (m.state === "paused") a.pausedIn++;
      const rank = STATE_RANK.indexOf(m.state);
      const current = STATE_RANK.indexOf(a.state);
      if (rank < current || (rank === current && m.since < a.since)) {
        a.state = m.state;
        a.since = m.since;
        a.name = m.name || a.name;
      }
      if (m.state === "paused" && m.paused_reason && !a.paused_reason) a.paused_reason = m.paused_reason;
    }
  }
  const agents = [...byInterface.values()];
  // Stable, meaningful order: engaged first, then by name, so rows move only on state change.
  agents.sort((x, y) => STATE_RANK.indexOf(x.state) - STATE_RANK.indexOf(y.state)
    || x.name.localeCompare(y.name) || x.interface.localeCompare(y.interface));
  return agents;
}

/** Waiting callers of the given queues, longest waiting first. */
export function waitingCallers(board, queueNames) {
  const out = [];
  for (const qn of queueNames) {
    const q = board.queues[qn];
    if (q) for (const c of q.waiting) out.push({ ...c, queue: qn });
  }
  out.sort((a, b) => a.joined_at - b.joined_at || a.uniqueid.localeCompare(b.uniqueid));
  return out;
}

/** Abandoned callers of the given queues, newest first. */
export function abandonedCallers(board, queueNames) {
  const out = [];
  for (const qn of queueNames) {
    const q = board.queues[qn];
    if (q) for (const a of q.abandoned_callers) out.push({ ...a, queue: qn });
  }
  out.sort((a, b) => b.at - a.at || a.uniqueid.localeCompare(b.uniqueid));
  return out;
}

/** The callbacks summary of one queue (worker's callbacks.summary), or null before the first. */
export function callbacksOf(queue) {
  return (queue && queue.callbacks) || null;
}

/** Whether a number can be called back: it has digits (not "anonymous", "<unknown>", ""). */
export function isCallable(number) {
  return typeof number === "string" && /\d/.test(number);
}

// --------------------------------------------------------------------------- thresholds

export const DEFAULT_THRESHOLDS = {
  sl_pct: { amber: 80, red: 60 },
  waiting: { amber: 3, red: 6 },
};

/** Thresholds of one queue, with defaults for anything the server did not send (a queue that
 *  appeared after the snapshot has none). Longest wait defaults to the queue's SL target. */
export function thresholdsFor(thresholds, queueName, stats) {
  const t = (thresholds && thresholds[queueName]) || {};
  const sl = (stats && stats.service_level_s) || 30;
  return {
    sl_pct: t.sl_pct || DEFAULT_THRESHOLDS.sl_pct,
    waiting: t.waiting || DEFAULT_THRESHOLDS.waiting,
    longest_wait_s: t.longest_wait_s || { amber: sl, red: 2 * sl },
  };
}

/** "good" | "warn" | "bad" | "none" for a value where more is worse (waiting, wait time). */
export function levelHigherWorse(value, t) {
  if (value === null || value === undefined) return "none";
  if (value >= t.red) return "bad";
  if (value >= t.amber) return "warn";
  return "good";
}

/** Same for a value where more is better (service level). null = no calls yet = neutral. */
export function levelHigherBetter(value, t) {
  if (value === null || value === undefined) return "none";
  if (value < t.red) return "bad";
  if (value < t.amber) return "warn";
  return "good";
}
