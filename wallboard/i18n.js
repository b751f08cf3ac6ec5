// Labels and locale-aware formatting. Dutch for nl* browsers, English otherwise; ?lang=
// overrides, because a TV's browser language is rarely what the office speaks.

const STRINGS = {
  en: {
    title: "Wallboard",
    queues: "Queues",
    waitingNow: "Waiting",
    longestWait: "Longest wait",
    serviceLevel: "Service level",
    slTarget: "within {s} s",
    asa: "ASA",
    answered: "Answered",
    abandoned: "Abandoned",
    offered: "Offered",
    available: "Available",
    busy: "Busy",
    paused: "Paused",
    agents: "Agents",
    agentsSummary: "{n} logged in",
    agent: "Agent",
    state: "State",
    inState: "Time",
    reason: "Reason",
    callsToday: "Calls",
    waitingCallers: "Waiting callers",
    abandonedCallers: "Abandoned today",
    caller: "Caller",
    queue: "Queue",
    position: "Pos.",
    wait: "Wait",
    waited: "Waited",
    when: "Time",
    callBack: "Call back",
    callbacks: "Callbacks",
    cbPending: "pending",
    cbInProgress: "in progress",
    cbAtRisk: "at risk",
    cbOverdue: "overdue",
    cbOnTimeToday: "on time today",
    cbBooking: "Booking…",
    cbBooked: "Callback booked",
    cbFailed: "Callback not booked",
    cbNoAnswer: "No answer from the server: the callback may not be booked. Try again.",
    "ab.booked": "Callback booked",
    "ab.late": "Callback late",
    "ab.calling": "Calling back now",
    "ab.done": "Called back",
    "ab.notReached": "Callback: not reached",
    "ab.cancelled": "Callback cancelled",
    "ab.unconfirmed": "Callback unconfirmed",
    "ab.reached": "Reached later",
    "ab.short": "Short abandon",
    noWaiting: "Nobody waiting",
    noAbandoned: "No abandoned calls today",
    noAgents: "No agents logged in",
    noQueues: "No queues yet",
    loggedOutHidden: "{n} logged out",
    pausedIn: "paused in {n} of {m} queues",
    tv: "TV",
    exitTv: "Exit TV",
    more: "+{n} more",
    page: "Page {i} of {n}",
    asOf: "Data as of {t}",
    unknown: "Unknown",
    "st.available": "Available",
    "st.ringing": "Ringing",
    "st.on_call": "On call",
    "st.wrapup": "Wrap-up",
    "st.paused": "Paused",
    "st.unavailable": "Unavailable",
    "st.logged_out": "Logged out",
    "conn.connecting": "Connecting…",
    "conn.connected": "Live",
    "conn.reconnecting": "Reconnecting in {s} s",
    "conn.offline": "Offline",
    "conn.unauthorised": "Not authorised",
    "conn.resyncing": "Resynchronising…",
    "err.4401": "This wallboard link has no valid token. Ask your administrator for a new wallboard link.",
    "err.4403": "This token may not view these queues. Check the link or ask your administrator.",
    "err.offline": "No network connection. The board will reconnect automatically.",
    retry: "Retry",
  },
  nl: {
    title: "Wallboard",
    queues: "Wachtrijen",
    waitingNow: "Wachtend",
    longestWait: "Langste wachttijd",
    serviceLevel: "Service level",
    slTarget: "binnen {s} s",
    asa: "Gem. wachttijd",
    answered: "Beantwoord",
    abandoned: "Opgehangen",
    offered: "Aangeboden",
    available: "Beschikbaar",
    busy: "Bezet",
    paused: "Pauze",
    agents: "Medewerkers",
    agentsSummary: "{n} ingelogd",
    agent: "Medewerker",
    state: "Status",
    inState: "Tijd",
    reason: "Reden",
    callsToday: "Gesprekken",
    waitingCallers: "Wachtende bellers",
    abandonedCallers: "Opgehangen vandaag",
    caller: "Beller",
    queue: "Wachtrij",
    position: "Pos.",
    wait: "Wacht",
    waited: "Wachtte",
    when: "Tijd",
    callBack: "Terugbellen",
    callbacks: "Terugbelverzoeken",
    cbPending: "gepland",
    cbInProgress: "bezig",
    cbAtRisk: "dreigt te laat",
    cbOverdue: "te laat",
    cbOnTimeToday: "op tijd vandaag",
    cbBooking: "Bezig…",
    cbBooked: "Terugbelverzoek ingepland",
    cbFailed: "Terugbelverzoek niet ingepland",
    cbNoAnswer: "Geen antwoord van de server: het terugbelverzoek is misschien niet ingepland. Probeer opnieuw.",
    "ab.booked": "Terugbelverzoek gepland",
    "ab.late": "Terugbellen te laat",
    "ab.calling": "Wordt nu teruggebeld",
    "ab.done": "Teruggebeld",
    "ab.notReached": "Teruggebeld: niet bereikt",
    "ab.cancelled": "Terugbelverzoek geannuleerd",
    "ab.unconfirmed": "Terugbellen onbevestigd",
    "ab.reached": "Later bereikt",
    "ab.short": "Kort opgehangen",
    noWaiting: "Niemand in de wacht",
    noAbandoned: "Vandaag nog niemand opgehangen",
    noAgents: "Geen medewerkers ingelogd",
    noQueues: "Nog geen wachtrijen",
    loggedOutHidden: "{n} uitgelogd",
    pausedIn: "pauze in {n} van {m} wachtrijen",
    tv: "TV",
    exitTv: "TV uit",
    more: "+{n} meer",
    page: "Pagina {i} van {n}",
    asOf: "Gegevens van {t}",
    unknown: "Onbekend",
    "st.available": "Beschikbaar",
    "st.ringing": "Gaat over",
    "st.on_call": "In gesprek",
    "st.wrapup": "Nawerk",
    "st.paused": "Pauze",
    "st.unavailable": "Onbereikbaar",
    "st.logged_out": "Uitgelogd",
    "conn.connecting": "Verbinden…",
    "conn.connected": "Live",
    "conn.reconnecting": "Opnieuw verbinden over {s} s",
    "conn.offline": "Offline",
    "conn.unauthorised": "Geen toegang",
    "conn.resyncing": "Synchroniseren…",
    "err.4401": "Deze wallboard-link heeft geen geldig token. Vraag je beheerder om een nieuwe link.",
    "err.4403": "Dit token mag deze wachtrijen niet bekijken. Controleer de link of vraag je beheerder.",
    "err.offline": "Geen netwerkverbinding. Het bord maakt vanzelf opnieuw verbinding.",
    retry: "Opnieuw",
  },
};

export function pickLanguage(param, navigatorLanguages) {
  const wanted = [param, ...(navigatorLanguages || [])].filter(Boolean);
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base in STRINGS) return base; // an unknown ?lang= falls through to the browser's
  }
  return "en";
}

export function makeI18n(lang) {
  const dict = STRINGS[lang] || STRINGS.en;
  // nl-NL rather than plain "nl" so the clock and separators match what Dutch offices expect.
  const locale = lang === "nl" ? "nl-NL" : (navigator.language && navigator.language.startsWith("en") ? navigator.language : "en-GB");
  const intFmt = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  const pctFmt = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 0 });
  const timeFmt = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit" });
  const clockFmt = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  function t(key, vars) {
    let s = dict[key] ?? STRINGS.en[key] ?? key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, v);
    return s;
  }
  return {
    lang,
    locale,
    t,
    int: (n) => (n === null || n === undefined ? "–" : intFmt.format(n)),
    pct: (n) => (n === null || n === undefined ? "–" : pctFmt.format(n / 100)),
    /** Epoch seconds → local hh:mm, for "when did this caller hang up". */
    time: (epochS) => timeFmt.format(new Date(epochS * 1000)),
    clock: (date) => clockFmt.format(date),
  };
}

/** Seconds → "m:ss" (or "h:mm:ss" past an hour). Waits are whole seconds; negatives from a
 *  slightly-behind clock show as 0:00 rather than a confusing minus. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${String(m).padStart(2, "0")}:${ss}`;
}
