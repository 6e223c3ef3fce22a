// The live leaderboard page: plain JavaScript, no dependencies, no build step.
//
// It follows docs/LIVE.md as the Go client package does:
//   - Each watched window (the top N; the ranks around a followed participant, radius 2) is a
//     LiveWindow kept by the rules of "Keeping a local copy": a snapshot replaces it, an update
//     applies only when its prev_version is the window's version, else the window is subscribed
//     again without since_version.
//   - A Connection carries both windows over one transport: WebSocket first; when the server is
//     reachable but refuses it, Server-Sent Events; then polling GET .../rankings every second
//     with If-None-Match. A lost connection is retried on the same transport with backoff and
//     resumes with since_version and epoch (a new epoch, after a restart, gets a snapshot); from a
//     fallback, WebSocket is tried again every 30 s.
//   - Every message is applied to the model at once; the screen is redrawn at most once per
//     animation frame from the latest model, and rows move (FLIP) from wherever they are shown to
//     where they belong now, so a burst of updates never queues animations or shows a stale state.

const RADIUS = 2;               // neighbours each side of a followed participant
const POLL_MS = 1000;           // polling fallback period
const CLIMB_MS = 30000;         // on SSE or polling, try WebSocket again this often
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 5000;
const STABLE_MS = 5000;         // a connection up this long resets the backoff
const NOT_FOUND_RETRY_MS = 3000;
const WS_PING_MS = 20000;       // our own ping, to notice a dead connection
const WS_IDLE_MS = 50000;       // nothing received for this long: reconnect
const BOARD_REFRESH_MS = 5000;  // leaderboard object (name, status, participants)
const LIST_REFRESH_MS = 10000;  // the list of leaderboards
const BADGE_MS = 4000;          // how long a move badge stays
const TINT_MS = 1200;           // how long a moved row stays tinted
const REQUEST_TIMEOUT_MS = 10000;
const LADDER = ["websocket", "sse", "polling"];
const ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

// ---- an access token, for a server started with --auth-reads ----

// TOKEN comes from the address's fragment (/#token=...): a fragment is never sent to the server,
// so the token stays out of its logs and out of Referer headers. The page keeps it for this tab
// (sessionStorage) and takes it out of the address bar at once.
const TOKEN = (() => {
  const frag = new URLSearchParams(location.hash.slice(1));
  let tok = frag.get("token") || "";
  if (tok) {
    try { sessionStorage.setItem("leaderboard-token", tok); } catch { /* storage off: this load only */ }
    frag.delete("token");
    const rest = frag.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  } else {
    try { tok = sessionStorage.getItem("leaderboard-token") || ""; } catch { /* storage off */ }
  }
  return tok;
})();
// authHeaders are the headers of the page's own requests; withToken adds the token to a
// WebSocket or SSE address (browsers cannot set headers on those; the server accepts
// ?access_token= on the live routes only).
const authHeaders = (h) => (TOKEN ? { ...h, Authorization: `Bearer ${TOKEN}` } : h);
const withToken = (url) => (TOKEN ? `${url}${url.includes("?") ? "&" : "?"}access_token=${enc(TOKEN)}` : url);
const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "");
const reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

// ---- REST ----

// api GETs a JSON resource. It resolves to {status, etag, body}; a network failure or timeout
// rejects.
async function api(path, etag) {
  const headers = authHeaders({ Accept: "application/json" });
  if (etag) headers["If-None-Match"] = etag;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
  try {
    const res = await fetch(path, { headers, cache: "no-store", signal: ctl.signal });
    const out = { status: res.status, etag: res.headers.get("ETag") || "", body: null };
    if (res.status !== 304 && res.status !== 204) {
      try { out.body = await res.json(); } catch { /* not JSON */ }
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

const errorCode = (r) => (r.body && r.body.error && r.body.error.code) || "";
const boardPath = (board) => `/v1/leaderboards/${enc(board)}`;

// ---- the local copy of one window (docs/LIVE.md, "Keeping a local copy") ----

class LiveWindow {
  constructor() {
    this.ready = false; this.version = 0; this.epoch = "";
    this.offset = 0; this.size = 0; this.entries = new Map(); // rank -> entry
  }
  // Rule 1: a snapshot replaces everything.
  snapshot(m, epoch) {
    this.entries = new Map();
    for (const e of m.entries || []) this.entries.set(e.rank, e);
    this.offset = m.offset ?? 0;
    this.size = m.size ?? (m.entries || []).length;
    this.version = m.version;
    this.epoch = m.epoch || epoch || this.epoch;
    this.ready = true;
  }
  // Rule 2: apply an update that continues the chain; false when it does not.
  update(m) {
    if (!this.ready || m.prev_version !== this.version) return false;
    for (const c of m.changes || []) this.entries.set(c.rank, c);
    if (m.offset != null) this.offset = m.offset;
    if (m.size != null) this.size = m.size;
    for (const r of this.entries.keys()) {
      if (r <= this.offset || r > this.offset + this.size) this.entries.delete(r);
    }
    this.version = m.version;
    return true;
  }
  // A polled page (GET .../rankings or .../participants/{pid}) is a snapshot too.
  page(entries, version, epoch) {
    const offset = entries.length ? entries[0].rank - 1 : 0;
    this.snapshot({ entries, offset, size: entries.length, version, epoch });
  }
  // Entries in rank order: ranks offset+1 .. offset+size.
  list() {
    const out = [];
    for (let r = this.offset + 1; r <= this.offset + this.size; r++) {
      const e = this.entries.get(r);
      if (e) out.push(e);
    }
    return out;
  }
  // Where to resume from, or null for a fresh snapshot.
  resumePoint() {
    return this.ready && this.epoch ? { since_version: this.version, epoch: this.epoch } : null;
  }
}

// ---- one leaderboard's live connection ----

// A subscription: what it watches, its window, and what the current transport knows of it.
function newSub(key, params) {
  return { key, ...params, win: new LiveWindow(), id: "", epoch: "", awaiting: false, es: null, etag: "", onConn: -1 };
}

function subQuery(sub) {
  const q = new URLSearchParams({ kind: sub.kind });
  if (sub.kind === "top") q.set("limit", String(sub.limit));
  else { q.set("participant_id", sub.pid); q.set("radius", String(sub.radius)); }
  return q;
}

class Connection {
  // ui: {changed(key), transport(state), board(meta), status(status), missing(false|"missing"|"locked"), followError(msg)}
  constructor(board, limit, follow, force, ui) {
    this.board = board; this.ui = ui; this.force = LADDER.includes(force) ? force : "";
    this.top = newSub("top", { kind: "top", limit });
    this.follow = follow ? newSub("follow", { kind: "around", pid: follow, radius: RADIUS }) : null;
    this.mode = this.force ? LADDER.indexOf(this.force) : 0;
    this.gen = 0;               // bumped whenever a transport ends: stale callbacks check it
    this.attempt = 0;
    this.seq = 0;
    this.timers = new Set();
    this.closeTransport = null;
    this.send = null;
    this.sseOpen = null;
    this.transport = "";        // the transport while connected, else ""
    this.everUp = false;
    this.stopped = false;
  }

  start() { this.connect(); }

  stop() {
    this.stopped = true;
    this.gen++;
    this.close();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  // after runs fn in ms unless the transport generation moved on meanwhile.
  after(gen, ms, fn) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (gen === this.gen && !this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  close() {
    if (this.closeTransport) this.closeTransport();
    this.closeTransport = this.send = this.sseOpen = null;
    this.transport = "";
    for (const s of [this.top, this.follow]) if (s) { s.es = null; s.id = ""; }
  }

  // connect checks the leaderboard over REST (so that a refusal of the transport that follows
  // is told apart from an unreachable server), then opens the transport of the current mode.
  async connect() {
    const gen = ++this.gen;
    this.close();
    let r;
    try {
      r = await api(boardPath(this.board));
    } catch {
      if (gen === this.gen) this.down(gen, false); // unreachable: retry the same transport
      return;
    }
    if (gen !== this.gen || this.stopped) return;
    if (r.status === 404) return this.missing(gen);
    if (r.status === 401 || r.status === 403) return this.missing(gen, "locked"); // --auth-reads
    if (r.status !== 200) return this.down(gen, false);
    this.ui.missing(false);
    this.ui.board(r.body);
    [this.openWebSocket, this.openSSE, this.openPolling][this.mode].call(this, gen);
  }

  // up: the server accepted the transport.
  up(gen, name) {
    if (gen !== this.gen || this.transport) return;
    this.transport = name; this.everUp = true;
    this.ui.transport(name);
    this.after(gen, STABLE_MS, () => { this.attempt = 0; });
    if (!this.force && this.mode > 0) {
      this.after(gen, CLIMB_MS, () => { this.mode = 0; this.connect(); });
    }
  }

  // down: the transport ended. refused: it ended before the server accepted it, right after the
  // server answered over REST: the server (or a proxy) does not take this transport, so the next
  // one is tried at once. Otherwise the same transport is tried again after a backoff.
  down(gen, refused) {
    if (gen !== this.gen || this.stopped) return;
    const g = ++this.gen;
    this.close();
    if (refused && !this.force && this.mode < LADDER.length - 1) {
      this.mode++;
      this.connect();
      return;
    }
    this.ui.transport(this.everUp ? "reconnecting" : "connecting");
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt++);
    this.after(g, 100 + Math.random() * cap, () => this.connect());
  }

  // missing: the board cannot be shown, because it does not exist (why "missing") or because
  // the server wants a token this page does not have ("locked"); the page asks again later.
  missing(gen, why = "missing") {
    if (gen !== this.gen) return;
    const g = ++this.gen;
    this.close();
    this.ui.missing(why);
    this.ui.transport(this.everUp ? "reconnecting" : "connecting");
    this.after(g, NOT_FOUND_RETRY_MS, () => this.connect());
  }

  // setFollow switches the followed participant ("" to stop) on the live transport.
  setFollow(pid) {
    const old = this.follow;
    this.follow = pid ? newSub("follow", { kind: "around", pid, radius: RADIUS }) : null;
    if (this.send) { // a WebSocket (one still opening subscribes this.follow when it opens)
      if (old && old.id && old.onConn === this.gen) this.send({ type: "unsubscribe", id: old.id });
      if (this.follow) this.subscribeWS(this.follow, true);
    } else if (this.sseOpen) {
      if (old && old.es) old.es.close();
      if (this.follow) this.sseOpen(this.follow, true);
    }
    // Polling picks it up on its next round.
  }

  // resubscribe asks for a fresh snapshot of sub after its update chain broke.
  resubscribe(sub) {
    if (this.send) this.subscribeWS(sub, true);
    else if (this.sseOpen) { if (sub.es) sub.es.close(); this.sseOpen(sub, true); }
  }

  // onMessage applies one server message (docs/LIVE.md "Messages"). via is the subscription of
  // an SSE stream; over WebSocket the message's id names it.
  onMessage(m, via) {
    if (m.type === "status") { this.ui.status(m.status); return; }
    const sub = via || [this.top, this.follow].find((s) => s && s.id && s.id === m.id);
    if (!sub) {
      if (m.type === "error" && !m.id) console.warn("leaderboard:", m.code, m.message);
      return;
    }
    switch (m.type) {
      case "subscribed":
        sub.epoch = m.epoch || "";
        break;
      case "snapshot":
        sub.win.snapshot(m, sub.epoch);
        sub.awaiting = false;
        this.ui.changed(sub.key);
        break;
      case "update":
        if (sub.awaiting) break; // after a resync, only the snapshot counts
        if ((sub.epoch && sub.win.epoch && sub.epoch !== sub.win.epoch) || !sub.win.update(m)) {
          this.resubscribe(sub); // the chain broke: start again from a snapshot
          break;
        }
        this.ui.changed(sub.key);
        break;
      case "resync":
        sub.awaiting = true; // the server sends a fresh snapshot for the same id
        break;
      case "error":
        if (m.code === "leaderboard_not_found") this.missing(this.gen);
        else if (sub.key === "follow") { this.ui.followError(m.message || m.code); sub.id = ""; }
        else this.down(this.gen, false); // too_many_subscriptions and the like: later
        break;
    }
  }

  // ---- WebSocket ----

  // openWebSocket connects on this server, or, with ?router=1 in the page's address, on the
  // gateway the connection router names (GET .../connect); if that one cannot be opened, the
  // next attempt is on this server again.
  openWebSocket(gen) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const own = `${scheme}//${location.host}${boardPath(this.board)}/subscribe`;
    if (params.get("router") !== "1" || this.routedFailed) {
      this.routedFailed = false;
      this.dialWebSocket(gen, own, false);
      return;
    }
    fetch(`${boardPath(this.board)}/connect`, { headers: authHeaders({}) })
      .then((r) => (r.ok ? r.json() : null))
      .then((j) => { if (gen === this.gen) this.dialWebSocket(gen, j && j.url ? j.url : own, !!(j && j.url)); })
      .catch(() => { if (gen === this.gen) this.dialWebSocket(gen, own, false); });
  }

  dialWebSocket(gen, url, routed) {
    const ws = new WebSocket(withToken(url));
    let opened = false;
    let last = Date.now();
    const beat = setInterval(() => {
      if (Date.now() - last > WS_IDLE_MS) { ws.close(); this.down(gen, false); return; }
      if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
    }, WS_PING_MS);
    this.closeTransport = () => {
      clearInterval(beat);
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* already closed */ }
    };
    this.send = (m) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m)); };
    ws.onopen = () => {
      if (gen !== this.gen) return;
      opened = true;
      this.up(gen, "websocket");
      this.subscribeWS(this.top, false);
      if (this.follow) this.subscribeWS(this.follow, false);
    };
    ws.onmessage = (ev) => {
      last = Date.now();
      if (gen !== this.gen) return;
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      this.onMessage(m, null);
    };
    ws.onclose = () => {
      if (routed && !opened) this.routedFailed = true;
      this.down(gen, !opened);
    };
  }

  // subscribeWS (re)subscribes sub under a new id, so that anything still in flight for the old
  // one is recognised and dropped; fresh: no since_version (a snapshot is wanted).
  subscribeWS(sub, fresh) {
    if (sub.id && sub.onConn === this.gen) this.send({ type: "unsubscribe", id: sub.id });
    sub.id = sub.key[0] + ++this.seq;
    sub.onConn = this.gen;
    sub.epoch = "";
    sub.awaiting = false;
    const m = { type: "subscribe", id: sub.id, kind: sub.kind };
    if (sub.kind === "top") m.limit = sub.limit;
    else { m.participant_id = sub.pid; m.radius = sub.radius; }
    const from = fresh ? null : sub.win.resumePoint();
    if (from) Object.assign(m, from);
    this.send(m);
  }

  // ---- Server-Sent Events: one stream per window ----

  openSSE(gen) {
    const streams = new Set();
    this.closeTransport = () => { for (const es of streams) es.close(); };
    // The page reopens a dropped stream itself (rather than leaving it to EventSource's own
    // retry, whose delay the server does not set and whose Last-Event-ID may be a status
    // event's version), with since_version and epoch from the window.
    const open = (sub, fresh) => {
      const q = subQuery(sub);
      const from = fresh ? null : sub.win.resumePoint();
      if (from) { q.set("since_version", String(from.since_version)); q.set("epoch", from.epoch); }
      const es = new EventSource(withToken(`${boardPath(this.board)}/stream?${q}`));
      streams.add(es);
      sub.es = es; sub.epoch = ""; sub.awaiting = false;
      let opened = false;
      const live = () => gen === this.gen && sub.es === es;
      es.onopen = () => {
        if (!live()) return;
        opened = true;
        if (sub === this.top) this.up(gen, "sse");
      };
      for (const type of ["snapshot", "update", "status", "resync"]) {
        es.addEventListener(type, (ev) => {
          if (!live()) return;
          let m;
          try { m = JSON.parse(ev.data); } catch { return; }
          m.type = m.type || type;
          this.onMessage(m, sub);
        });
      }
      es.onerror = () => {
        es.close();
        streams.delete(es);
        if (live()) this.down(gen, !opened);
      };
    };
    this.sseOpen = open;
    open(this.top, false);
    if (this.follow) open(this.follow, false);
  }

  // ---- polling: GET .../rankings (and the followed participant) with If-None-Match ----

  openPolling(gen) {
    let answered = false;
    this.closeTransport = () => {};
    const round = async () => {
      try {
        await this.pollTop(gen);
        await this.pollFollow(gen);
      } catch (e) {
        if (gen !== this.gen) return;
        if (e && e.missing) return this.missing(gen);
        return this.down(gen, !answered);
      }
      if (gen !== this.gen) return;
      if (!answered) { answered = true; this.up(gen, "polling"); }
      this.after(gen, POLL_MS, round);
    };
    round();
  }

  async pollTop(gen) {
    const sub = this.top;
    const r = await api(`${boardPath(this.board)}/rankings?limit=${sub.limit}`, sub.win.ready ? sub.etag : "");
    if (gen !== this.gen || r.status === 304) return;
    if (r.status === 404) throw { missing: true };
    if (r.status !== 200 || !r.body) throw new Error(`rankings: HTTP ${r.status}`);
    sub.etag = r.etag;
    sub.win.page(r.body.entries || [], r.body.version, r.body.epoch);
    this.ui.changed("top");
  }

  async pollFollow(gen) {
    const sub = this.follow;
    if (!sub) return;
    const r = await api(`${boardPath(this.board)}/participants/${enc(sub.pid)}?neighbors=${RADIUS}`,
      sub.win.ready ? sub.etag : "");
    if (gen !== this.gen || sub !== this.follow || r.status === 304) return;
    if (r.status === 404 && errorCode(r) === "participant_not_found") {
      sub.etag = "";
      sub.win.page([], 0, "");
    } else if (r.status === 404) {
      throw { missing: true };
    } else if (r.status === 200 && r.body) {
      const b = r.body;
      const me = { rank: b.rank, participant_id: b.participant_id, score: b.score, achieved_at: b.achieved_at };
      const entries = [...(b.neighbors || []), me].sort((x, y) => x.rank - y.rank);
      sub.etag = r.etag;
      sub.win.page(entries, b.version, "");
    } else {
      throw new Error(`participant: HTTP ${r.status}`);
    }
    this.ui.changed("follow");
  }
}

// ---- rendering ----

// renderRows shows entries in tbody, one row per participant (keyed by id). Rows that change
// place move there with a FLIP animation from where they are on screen now, which may be halfway
// through an earlier move: a burst of updates retargets the rows instead of queueing animations.
// shown maps participant id -> {rank, score} as last rendered; it is how moves are measured.
function renderRows(tbody, entries, shown, opts) {
  const animate = opts.animate && !reduceMotion.matches && shown.size > 0;
  const rows = new Map();
  for (const tr of tbody.children) rows.set(tr.dataset.pid, tr);
  const first = new Map();
  let bottom = 0; // where rows entering from below start
  if (animate) {
    for (const [pid, tr] of rows) first.set(pid, tr.getBoundingClientRect().top);
    bottom = tbody.getBoundingClientRect().bottom;
  }

  const order = [];
  const next = new Map();
  for (const e of entries) {
    let tr = rows.get(e.participant_id);
    if (!tr) {
      tr = newRow(e.participant_id);
      if (animate) tr.classList.add("enter");
    }
    fillRow(tr, e, shown.get(e.participant_id), opts, shown.size > 0);
    order.push(tr);
    next.set(e.participant_id, { rank: e.rank, score: e.score });
  }
  let cursor = tbody.firstElementChild;
  for (const tr of order) {
    if (tr === cursor) cursor = cursor.nextElementSibling;
    else tbody.insertBefore(tr, cursor);
  }
  while (cursor) { const n = cursor.nextElementSibling; cursor.remove(); cursor = n; }

  if (animate) {
    for (const tr of order) { tr.style.transition = "none"; tr.style.transform = ""; }
    const moved = [];
    for (const tr of order) {
      const now = tr.getBoundingClientRect().top;
      let top = first.get(tr.dataset.pid);
      if (top === undefined) {
        if (!opts.enterFromBelow) continue;
        // A newcomer to the top N rises from below: from the table's end, or two rows down.
        top = Math.min(bottom, now + 2 * tr.getBoundingClientRect().height);
      }
      const dy = top - now;
      if (Math.abs(dy) >= 1) moved.push([tr, dy]);
    }
    for (const [tr, dy] of moved) tr.style.transform = `translateY(${dy}px)`;
    void tbody.offsetHeight; // commit the inverted positions, then let them transition home
    for (const tr of order) tr.style.transition = "";
    for (const [tr] of moved) tr.style.transform = "";
  }
  shown.clear();
  for (const [k, v] of next) shown.set(k, v);
}

function newRow(pid) {
  const tr = document.createElement("tr");
  tr.dataset.pid = pid;
  for (const c of ["rank", "move", "pid", "score", "when"]) {
    const td = document.createElement("td");
    td.className = c;
    tr.appendChild(td);
  }
  tr.cells[2].textContent = pid;
  tr.cells[2].title = pid;
  tr.addEventListener("click", () => followParticipant(pid));
  // A row moved in the DOM would replay a finished animation: drop the class once it has run.
  tr.addEventListener("animationend", (ev) => ev.target.classList.remove("enter", "bump"));
  return tr;
}

function fillRow(tr, e, before, opts, hadRows) {
  const [rank, move, , score, when] = tr.cells;
  tr.dataset.rank = String(e.rank);
  rank.textContent = String(e.rank);
  const s = fmt(e.score);
  if (score.textContent !== s) {
    score.textContent = s;
    if (before && before.score !== e.score) flash(score, "bump");
  }
  when.textContent = e.achieved_at ? new Date(e.achieved_at).toLocaleTimeString([], { hour12: false }) : "";
  tr.classList.toggle("me", e.participant_id === app.follow);
  if (before && before.rank !== e.rank) showMove(tr, move, before.rank - e.rank);
  else if (!before && hadRows && opts.badgeNew) showMove(tr, move, "new");
}

// showMove puts an arrow and "+n"/"-n" (ranks gained or lost) on the row for a few seconds, and
// tints the row while it moves.
function showMove(tr, cell, delta) {
  const up = delta === "new" || delta > 0;
  const text = delta === "new" ? "▲ new" : delta > 0 ? `▲ +${delta}` : `▼ −${-delta}`;
  cell.innerHTML = "";
  const b = document.createElement("span");
  b.className = `badge ${delta === "new" ? "new" : up ? "up" : "down"}`;
  b.textContent = text;
  b.title = delta === "new" ? "entered the table" : `${up ? "up" : "down"} ${Math.abs(delta)} place${Math.abs(delta) === 1 ? "" : "s"}`;
  cell.appendChild(b);
  clearTimeout(tr._badge);
  tr._badge = setTimeout(() => { if (cell.firstChild === b) cell.innerHTML = ""; }, BADGE_MS);
  tr.classList.remove("up", "down");
  tr.classList.add(up ? "up" : "down");
  clearTimeout(tr._tint);
  tr._tint = setTimeout(() => tr.classList.remove("up", "down"), TINT_MS);
}

function flash(el, cls) {
  el.classList.remove(cls);
  void el.offsetWidth; // restart the animation
  el.classList.add(cls);
}

// ---- the page ----

const params = new URLSearchParams(location.search);
const app = {
  board: "",
  follow: "",
  limit: Math.min(1000, Math.max(1, parseInt(params.get("limit"), 10) || 100)),
  force: params.get("transport") || "",
  conn: null,
  meta: null,           // the leaderboard object
  missing: false,
  transport: "connecting",
  followError: "",
  followRank: null,     // the followed participant's rank as last rendered
  followTimer: 0,
  shownTop: new Map(),
  shownFollow: new Map(),
  boards: [],
};

// Redraws happen in animation frames, at most one every MIN_FRAME_MS (the server's default
// flush interval): messages in between are applied to the model and drawn together.
const MIN_FRAME_MS = 100;
let dirty = new Set();
let framePending = false;
let lastFrame = -Infinity;
function invalidate(what) {
  dirty.add(what);
  if (framePending) return;
  framePending = true;
  const wait = lastFrame + MIN_FRAME_MS - performance.now();
  if (wait > 0) setTimeout(() => requestAnimationFrame(frame), wait);
  else requestAnimationFrame(frame);
}
function frame(now) {
  framePending = false;
  lastFrame = now;
  const d = dirty;
  dirty = new Set();
  if (d.has("head")) renderHead();
  if (d.has("conn")) renderConn();
  if (d.has("top")) renderTop();
  if (d.has("follow") || d.has("top")) renderFollow();
  if (d.has("list")) renderList();
}

const connText = {
  connecting: ["Connecting…", "Connecting to the server"],
  websocket: ["Live · WebSocket", "Live updates over WebSocket"],
  sse: ["Live · SSE", "Live updates over Server-Sent Events (WebSocket unavailable)"],
  polling: ["Polling", "Polling the rankings every second (no live stream available)"],
  reconnecting: ["Reconnecting…", "The connection was lost; reconnecting"],
};
function renderConn() {
  const el = $("conn");
  const [label, title] = connText[app.transport] || connText.connecting;
  el.dataset.state = app.transport;
  el.title = title;
  el.querySelector(".label").textContent = label;
}

function renderHead() {
  const m = app.meta;
  $("board-name").textContent = !app.board ? "Pick a leaderboard" : m ? m.name || m.leaderboard_id : app.board;
  document.title = app.board ? `${m ? m.name || app.board : app.board} · live leaderboard` : "Leaderboard · live";
  const meta = $("board-meta");
  meta.textContent = "";
  if (m && app.board) {
    const st = document.createElement("span");
    st.className = "status";
    st.id = "board-status";
    st.dataset.status = m.status;
    st.textContent = m.status;
    meta.append(st, ` ${m.leaderboard_id} · ${m.type} · ${fmt(m.total_participants)} participants`);
    if (m.ends_at) {
      const left = Date.parse(m.ends_at) - Date.now();
      meta.append(left > 0 ? ` · ends in ${duration(left)}` : " · ended");
    }
  }
  const miss = $("board-missing");
  miss.hidden = !app.missing;
  miss.textContent = !app.missing ? ""
    : app.missing === "locked"
      ? `This server shows “${app.board}” only with an access token: open this page as …/#token=<token>. Retrying…`
      : `Leaderboard “${app.board}” does not exist (yet). Retrying…`;
}

function duration(ms) {
  const m = Math.floor(ms / 60000);
  if (m < 1) return "less than a minute";
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} days`;
}

function renderTop() {
  const c = app.conn;
  const win = c ? c.top.win : null;
  const entries = win && win.ready ? win.list() : [];
  renderRows($("top-body"), entries, app.shownTop, { animate: true, badgeNew: true, enterFromBelow: true });
  const table = $("top");
  table.dataset.version = win && win.ready ? String(win.version) : "";
  $("top-version").textContent = win && win.ready ? `v${win.version}` : "";
  const empty = $("top-empty");
  empty.hidden = !app.board || !win || (win.ready && entries.length > 0);
  empty.textContent = win && win.ready ? "No scores yet." : "Loading…";
}

function renderFollow() {
  const view = $("follow-view");
  const table = $("follow-table");
  $("follow-clear").hidden = !app.follow;
  const sub = app.conn && app.conn.follow;
  view.textContent = "";
  delete view.dataset.rank;
  delete view.dataset.score;
  const p = (cls, text) => { const el = document.createElement("div"); el.className = cls; el.textContent = text; return el; };
  if (app.followError) view.append(p("notice", app.followError));
  if (!app.follow || !sub) {
    view.dataset.state = "none";
    view.append(p("muted hint", "Type an id, or tap a row of the table."));
    table.hidden = true;
    app.shownFollow.clear();
    $("follow-body").textContent = "";
    return;
  }
  const win = sub.win;
  const entries = win.ready ? win.list() : [];
  const me = entries.find((e) => e.participant_id === app.follow);
  if (!win.ready) {
    view.dataset.state = "loading";
    view.append(p("muted hint", `Loading ${app.follow}…`));
  } else if (!me) {
    view.dataset.state = "unranked";
    view.append(p("muted hint", `${app.follow} has no score on this leaderboard yet.`));
    app.followRank = null;
  } else {
    view.dataset.state = "ranked";
    view.dataset.rank = String(me.rank);
    view.dataset.score = String(me.score);
    const stats = document.createElement("div");
    stats.className = "stats";
    stats.append(p("who", me.participant_id));
    const rank = p("big", `#${me.rank}`);
    rank.id = "follow-rank";
    const score = p("big", fmt(me.score));
    score.id = "follow-score";
    stats.append(p("lbl", "Rank"), p("lbl", "Score"), rank, score);
    const moveCell = document.createElement("div");
    moveCell.className = "gap";
    if (app.followRank !== null && app.followRank !== me.rank) {
      const d = app.followRank - me.rank;
      const b = document.createElement("span");
      b.className = `badge ${d > 0 ? "up" : "down"}`;
      b.textContent = d > 0 ? `▲ +${d}` : `▼ −${-d}`;
      app.followMove = { el: b, until: Date.now() + BADGE_MS };
    }
    if (app.followMove && app.followMove.until > Date.now()) {
      moveCell.append(app.followMove.el, " ");
      clearTimeout(app.followTimer);
      app.followTimer = setTimeout(() => invalidate("follow"), app.followMove.until - Date.now() + 20);
    }
    const above = entries.find((e) => e.rank === me.rank - 1);
    const below = entries.find((e) => e.rank === me.rank + 1);
    if (above) moveCell.append(`${fmt(Math.abs(above.score - me.score))} behind #${above.rank} ${above.participant_id}`);
    else if (below) moveCell.append(`Leading by ${fmt(Math.abs(me.score - below.score))}`);
    else moveCell.append("Alone on the board");
    if (app.meta) moveCell.append(` · of ${fmt(app.meta.total_participants)}`);
    stats.append(moveCell);
    view.append(stats);
    app.followRank = me.rank;
  }
  table.hidden = entries.length === 0;
  renderRows($("follow-body"), entries, app.shownFollow, { animate: true, badgeNew: false });
}

function renderList() {
  const ul = $("board-list");
  ul.textContent = "";
  for (const b of app.boards) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `/?board=${enc(b.leaderboard_id)}`;
    a.dataset.board = b.leaderboard_id;
    if (b.leaderboard_id === app.board) a.setAttribute("aria-current", "page");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = b.name || b.leaderboard_id;
    const sub = document.createElement("span");
    sub.className = "sub";
    sub.textContent = `${b.status} · ${fmt(b.total_participants)} participants`;
    a.append(name, sub);
    a.addEventListener("click", (ev) => {
      if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return;
      ev.preventDefault();
      selectBoard(b.leaderboard_id, "", true);
    });
    li.append(a);
    ul.append(li);
  }
  $("boards-empty").hidden = app.boards.length > 0;
}

// ---- state changes ----

const ui = {
  changed(key) { invalidate(key); if (key === "top") invalidate("head"); },
  transport(state) { app.transport = state; invalidate("conn"); },
  board(meta) { app.meta = meta; invalidate("head"); },
  status(status) { if (app.meta) { app.meta.status = status; invalidate("head"); } refreshBoard(); },
  missing(v) { if (app.missing !== v) { app.missing = v; invalidate("head"); } },
  followError(msg) { app.followError = msg; invalidate("follow"); },
};

function writeURL(push) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of [["board", app.board], ["follow", app.follow]]) {
    if (v) q.set(k, v); else q.delete(k);
  }
  const url = `${location.pathname}${q.toString() ? "?" + q : ""}`;
  if (url !== location.pathname + location.search) history[push ? "pushState" : "replaceState"](null, "", url);
}

function selectBoard(board, follow, push) {
  if (app.conn) app.conn.stop();
  app.conn = null;
  app.board = board;
  app.follow = follow && ID_RE.test(follow) ? follow : "";
  app.meta = null; app.missing = false; app.followError = ""; app.followRank = null; app.followMove = null;
  app.shownTop.clear(); app.shownFollow.clear();
  $("top-body").textContent = "";
  $("follow-body").textContent = "";
  $("follow-input").value = app.follow;
  writeURL(push);
  if (board) {
    app.conn = new Connection(board, app.limit, app.follow, app.force, ui);
    app.conn.start();
  } else {
    app.transport = "connecting";
  }
  for (const k of ["head", "conn", "top", "follow", "list"]) invalidate(k);
}

function followParticipant(pid) {
  pid = pid.trim();
  if (pid && !ID_RE.test(pid)) {
    app.followError = "A participant id is 1 to 128 of A-Z a-z 0-9 _ . : -";
    invalidate("follow");
    return;
  }
  app.follow = pid; app.followError = ""; app.followRank = null; app.followMove = null;
  app.shownFollow.clear();
  $("follow-body").textContent = "";
  $("follow-input").value = pid;
  writeURL(false);
  if (app.conn) app.conn.setFollow(pid);
  invalidate("follow"); invalidate("top");
}

async function refreshBoard() {
  const c = app.conn;
  if (!c || app.missing) return;
  try {
    const r = await api(boardPath(c.board));
    if (c === app.conn && r.status === 200) ui.board(r.body);
  } catch { /* the connection notices an outage itself */ }
}

async function refreshList() {
  try {
    const r = await api("/v1/leaderboards?limit=100");
    if (r.status === 200 && r.body) {
      app.boards = r.body.leaderboards || [];
      invalidate("list");
    }
  } catch { /* try again later */ }
}

$("follow-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  followParticipant($("follow-input").value);
});
$("follow-clear").addEventListener("click", () => followParticipant(""));
window.addEventListener("popstate", () => {
  const q = new URLSearchParams(location.search);
  selectBoard(q.get("board") || "", q.get("follow") || "", false);
});
// Leaving the page closes its streams (a page kept in the back/forward cache would hold them
// open); coming back to it starts afresh.
window.addEventListener("pagehide", () => { if (app.conn) app.conn.stop(); });
window.addEventListener("pageshow", (ev) => { if (ev.persisted) selectBoard(app.board, app.follow, false); });
window.addEventListener("online", () => {
  if (app.conn && !app.conn.transport) app.conn.connect();
});
setInterval(refreshBoard, BOARD_REFRESH_MS);
setInterval(() => { refreshList(); invalidate("head"); }, LIST_REFRESH_MS);

// A read-only view of the state, for debugging from the console.
window.leaderboardPage = () => ({
  board: app.board, follow: app.follow, transport: app.transport,
  top: app.conn ? { version: app.conn.top.win.version, epoch: app.conn.top.win.epoch, entries: app.conn.top.win.list() } : null,
});

const defaultBoard = document.querySelector('meta[name="lb-default-board"]').content;
selectBoard(params.get("board") || defaultBoard, params.get("follow") || "", false);
refreshList();
