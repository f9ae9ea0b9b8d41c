// Real-user analytics: what happened to the viewer on this page, sent in one small batch when the
// page is hidden or left, to the gateway's POST {api}/v1/beacon (docs/viewer.md, "Analytics").
//
// Nothing in it names the visitor: no cookie, no id, no user agent; a device class guessed from
// the screen and the pointer, times in ms since the page started, interactions counted once per
// gesture, error codes. A page opts out with analytics="off" on the element.

export const MAX_EVENTS = 64; // per beacon, the gateway's limit (proto/analytics.py)
const MAX_MS = 600000; // longer is no page load: the gateway would refuse the whole beacon
const GESTURE_QUIET_MS = 1000; // changes closer than this are one gesture
const CODE = /^[a-z0-9_.-]{1,40}$/;

/** "phone", "tablet" or "desktop": a coarse pointer on a small or a larger screen, else desktop. */
export function deviceClass(win = window) {
  const coarse = typeof win.matchMedia === "function" && win.matchMedia("(pointer: coarse)").matches;
  if (!coarse) return "desktop";
  const shortSide = Math.min(win.screen?.width || 0, win.screen?.height || 0);
  return shortSide >= 600 ? "tablet" : "phone";
}

function defaultSend(url, body) {
  // A string goes as text/plain: no CORS preflight, and the browser sends it even as the page goes.
  try {
    if (navigator.sendBeacon && navigator.sendBeacon(url, body)) return;
  } catch (_) {
    // fall through to fetch
  }
  fetch(url, { method: "POST", body, keepalive: true, credentials: "omit", headers: { "Content-Type": "text/plain" } })
    .catch(() => {});
}

export class BeaconQueue {
  /**
   * @param {string} url  where beacons go ({api}/v1/beacon?key=…)
   * @param {string} objectId
   * @param {{send?: (url: string, body: string) => void, device?: string, now?: () => number}} options
   */
  constructor(url, objectId, { send = defaultSend, device = deviceClass(), now = () => performance.now() } = {}) {
    this.url = url;
    this.objectId = objectId;
    this.device = device;
    this._send = send;
    this._now = now;
    this._events = [];
    this._lastGesture = {}; // action -> when it last changed
    this._visibleSince = null; // when the viewer came on screen (and the page was visible)
    this._inViewMs = 0;
    this._onScreen = false;
    this._pageVisible = true;
    this._detach = [];
  }

  _push(event) {
    if (this._events.length < MAX_EVENTS * 4) this._events.push(event);
  }

  view() {
    this._push({ kind: "view" });
  }

  _ms(kind, ms) {
    if (Number.isFinite(ms) && ms >= 0 && ms <= MAX_MS) this._push({ kind, ms: Math.round(ms) });
  }

  poster(ms) {
    this._ms("poster", ms);
  }

  firstFrame(ms) {
    this._ms("first_frame", ms);
  }

  /** "orbit", "zoom" or "fullscreen": counted once per gesture, however many frames it moves. */
  interaction(action) {
    const t = this._now();
    const last = this._lastGesture[action];
    this._lastGesture[action] = t;
    if (last !== undefined && t - last < GESTURE_QUIET_MS) return;
    this._push({ kind: "interaction", action });
  }

  error(code) {
    const c = String(code).toLowerCase().replace(/[^a-z0-9_.-]/g, "_").slice(0, 40);
    if (CODE.test(c)) this._push({ kind: "error", code: c });
  }

  _visibility(onScreen, pageVisible) {
    const t = this._now();
    const was = this._onScreen && this._pageVisible;
    this._onScreen = onScreen;
    this._pageVisible = pageVisible;
    const is = onScreen && pageVisible;
    if (was && !is && this._visibleSince !== null) {
      this._inViewMs += t - this._visibleSince;
      this._visibleSince = null;
    } else if (!was && is) {
      this._visibleSince = t;
    }
  }

  /** Send what was gathered since the last flush (nothing when there is nothing). */
  flush() {
    if (this._visibleSince !== null) {
      const t = this._now();
      this._inViewMs += t - this._visibleSince;
      this._visibleSince = t;
    }
    const events = this._events;
    this._events = [];
    if (this._inViewMs >= 1) {
      events.push({ kind: "time_in_view", ms: Math.round(Math.min(this._inViewMs, MAX_MS)) });
      this._inViewMs = 0;
    }
    for (let i = 0; i < events.length; i += MAX_EVENTS) {
      const body = { object_id: this.objectId, device: this.device, events: events.slice(i, i + MAX_EVENTS) };
      this._send(this.url, JSON.stringify(body));
    }
  }

  /** Follow `element` on screen and the page's visibility; flush when the page is hidden or left. */
  attach(element, win = window, doc = document) {
    const pageVisible = () => doc.visibilityState !== "hidden";
    const onVisibility = () => {
      this._visibility(this._onScreen, pageVisible());
      if (!pageVisible()) this.flush();
    };
    const onHide = () => this.flush();
    doc.addEventListener("visibilitychange", onVisibility);
    win.addEventListener("pagehide", onHide);
    this._detach.push(() => doc.removeEventListener("visibilitychange", onVisibility));
    this._detach.push(() => win.removeEventListener("pagehide", onHide));
    if (typeof win.IntersectionObserver === "function") {
      const io = new win.IntersectionObserver((entries) => {
        for (const e of entries) this._visibility(e.isIntersecting && e.intersectionRatio >= 0.5, pageVisible());
      }, { threshold: [0, 0.5] });
      io.observe(element);
      this._detach.push(() => io.disconnect());
    } else {
      this._visibility(true, pageVisible());
    }
  }

  detach() {
    this.flush();
    for (const undo of this._detach.splice(0)) undo();
  }
}
