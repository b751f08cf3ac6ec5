// The wallboard websocket: connect, follow the snapshot + delta sequence, and come back after
// any failure without a supervisor touching the screen. The only failures it gives up on are
// the server's explicit "no" (4401 bad token, 4403 forbidden scope): retrying those forever
// would just hammer the server with a link that will never work.

const FATAL_CODES = new Set([4401, 4403]);
const BACKOFF_BASE_S = 1;
const BACKOFF_CAP_S = 30;
// After a resync request the server owes us a snapshot; if it never comes, the socket is
// probably wedged, and a fresh connection is the surest way to a consistent board.
const RESYNC_TIMEOUT_MS = 10000;
// Only enforced once the server has shown it pings: a silent-but-healthy idle server must
// not cause a reconnect storm.
const SILENCE_LIMIT_MS = 60000;
const OPEN_TIMEOUT_MS = 10000;

export function backoffDelayS(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt);
  // "Equal jitter": at least half the ceiling, so a fleet of TVs that lost the server at the
  // same moment spreads out instead of reconnecting in lockstep.
  return ceiling / 2 + random() * (ceiling / 2);
}

export class WallboardConnection {
  /**
   * @param {string} url  full ws:// or wss:// URL including token and queues
   * @param {object} handlers  onSnapshot(msg), onDelta(msg), onClock(pbxTime), onStatus(state, detail),
   *                            onReply(msg) (optional: answers to our requests, e.g. callback.ack)
   */
  constructor(url, handlers) {
    this.url = url;
    this.h = handlers;
    this.ws = null;
    this.seq = null;            // last applied sequence number; null until the first snapshot
    this.awaitingSnapshot = true;
    this.attempt = 0;
    this.fatal = false;
    this.sawPing = false;
    this.lastMessageAt = 0;
    this.reconnectTimer = null;
    this.countdownTimer = null;
    this.resyncTimer = null;
    this.stats = { connects: 0, resyncs: 0, gaps: 0, deltas: 0, snapshots: 0 };
    window.addEventListener("online", () => { if (!this.ws && !this.fatal) this.connectNow(); });
    window.addEventListener("offline", () => { if (!this.ws) this.status("offline"); });
    setInterval(() => this.watchdog(), 5000);
  }

  status(state, detail = {}) {
    this.state = state;
    this.h.onStatus(state, detail);
  }

  connectNow() {
    clearTimeout(this.reconnectTimer);
    clearInterval(this.countdownTimer);
    this.fatal = false;
    this.open();
  }

  open() {
    this.status("connecting");
    this.awaitingSnapshot = true;
    // Silence is measured per connection: without this reset, the watchdog would kill a fresh
    // attempt after any outage longer than SILENCE_LIMIT_MS, before its first message arrived.
    this.lastMessageAt = Date.now();
    this.sawPing = false;
    this.stats.connects++;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.onMessage(ws, ev);
    ws.onclose = (ev) => this.onClose(ws, ev);
    // A handshake that hangs (dead proxy, captive portal) would otherwise leave us "connecting"
    // forever; closing it feeds the normal backoff path.
    setTimeout(() => { if (ws.readyState === WebSocket.CONNECTING) ws.close(); }, OPEN_TIMEOUT_MS);
    // onerror is always followed by onclose, which does the work.
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  onMessage(ws, ev) {
    if (ws !== this.ws) return;
    this.lastMessageAt = Date.now();
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return; // a garbled frame is not worth dropping a healthy connection for
    }
    // The PBX's clock (an older server sends only its own): every time on the board is on it.
    const clock = typeof msg.pbx_time === "number" ? msg.pbx_time : msg.server_time;
    if (typeof clock === "number") this.h.onClock(clock);
    switch (msg.type) {
      case "snapshot":
        clearTimeout(this.resyncTimer);
        this.seq = msg.seq;
        this.awaitingSnapshot = false;
        this.attempt = 0; // only a snapshot proves the connection really works
        this.stats.snapshots++;
        this.h.onSnapshot(msg);
        this.status("connected");
        break;
      case "delta":
        this.onDelta(msg);
        break;
      case "ping":
        this.sawPing = true;
        this.send({ type: "pong" });
        break;
      case "callback.ack":
        // Outside the delta sequence: it never causes a gap, and arrives even mid-resync.
        if (this.h.onReply) this.h.onReply(msg);
        break;
      default:
        break; // newer server, older page: ignore what we do not know
    }
  }

  onDelta(msg) {
    if (this.awaitingSnapshot) return; // the coming snapshot supersedes it
    if (msg.seq <= this.seq) return;   // a duplicate from before a snapshot we already have
    if (msg.seq !== this.seq + 1) {
      // A missed delta means the board is now wrong in an unknown way; applying later deltas
      // on top would only hide that. Ask for a fresh snapshot and drop everything until then.
      this.stats.gaps++;
      this.requestResync();
      return;
    }
    this.seq = msg.seq;
    this.stats.deltas++;
    this.h.onDelta(msg);
  }

  requestResync() {
    this.awaitingSnapshot = true;
    this.stats.resyncs++;
    this.send({ type: "resync" });
    this.status("resyncing");
    clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => this.forceReconnect(), RESYNC_TIMEOUT_MS);
  }

  forceReconnect() {
    if (this.ws) this.ws.close(4000, "client reconnect");
  }

  onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearTimeout(this.resyncTimer);
    if (FATAL_CODES.has(ev.code)) {
      this.fatal = true;
      this.status("unauthorised", { code: ev.code, reason: ev.reason });
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    const delayS = backoffDelayS(this.attempt);
    this.attempt++;
    const due = Date.now() + delayS * 1000;
    const show = () => {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      if (navigator.onLine === false) this.status("offline", { seconds: left });
      else this.status("reconnecting", { seconds: left });
    };
    show();
    clearInterval(this.countdownTimer);
    this.countdownTimer = setInterval(show, 1000);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      clearInterval(this.countdownTimer);
      this.open();
    }, delayS * 1000);
  }

  watchdog() {
    if (this.ws && this.sawPing && Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS) {
      this.forceReconnect(); // half-open socket: the server stopped pinging us
    }
  }
}
