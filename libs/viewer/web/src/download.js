// Fetches the model file on the page's own thread and hands it to Spark as a stream.
//
// Left to itself Spark fetches in a worker it starts on first use, so the download began only
// after that worker had loaded its script and WebAssembly (0.3-0.4 s after the renderer existed
// in headless Chromium). Fetching here starts the download at once, in parallel with the worker
// and the pipeline warm-up, and shows us the file's first bytes (a .ply header names its up
// axis). Spark pulls the bytes with its `stream` option; whatever arrived since its last pull
// goes over in one piece, so a slow consumer costs one message per pull, not one per chunk.

/** Concatenate byte arrays (one copy; none for a single part). */
function concat(parts) {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Start fetching `url`; returns at once `{ stream, head }`: the body as a ReadableStream of
 * Uint8Array (so that its reader, and Spark's worker, can be set up before the response
 * begins) and a promise of its first `headBytes` bytes (fewer for a smaller file).
 * `onProgress(loaded, length)` follows the bytes as they arrive (length 0 when not announced).
 * A failed response errors the stream and rejects `head` with a message that says what came back.
 * `response`, when given, is a fetch of `url` the page already started (the embed page's early
 * fetch): it is read instead of asking again.
 * `done` settles when the download ends: rejected with its failure. Spark does not settle its
 * `initialized` when the stream errors before the first byte (a fetch refused by CORS, a network
 * error), so whoever waits for the model must wait for `done` too or it waits forever.
 */
export function openDownload(url, { onProgress = () => {}, headBytes = 4096, response: started = null } = {}) {
  const queue = [];
  let finished = false;
  let failure = null;
  let wake = () => {};
  const head = [];
  let headLength = 0;
  let resolveHead;
  let rejectHead;
  const headPromise = new Promise((resolve, reject) => {
    resolveHead = resolve;
    rejectHead = reject;
  });
  headPromise.catch(() => {}); // the stream carries the same failure to whoever reads it
  let resolveDone;
  let rejectDone;
  const done = new Promise((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  done.catch(() => {}); // read by the viewer; unread it must not count as unhandled

  (async () => {
    let loaded = 0;
    try {
      const response = await (started || fetch(url, { credentials: "same-origin" }));
      if (!response.ok || !response.body) {
        const status = `${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
        throw new Error(`the model file answered HTTP ${status}`);
      }
      const length = Number.parseInt(response.headers.get("Content-Length") || "0", 10) || 0;
      onProgress(0, length);
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        loaded += value.length;
        if (headLength < headBytes) {
          // a copy: Spark transfers the chunk to its worker, which empties every view of it here
          head.push(value.slice(0, headBytes - headLength));
          headLength += head[head.length - 1].length;
          if (headLength >= headBytes) resolveHead(concat(head));
        }
        queue.push(value);
        wake();
        onProgress(loaded, length);
      }
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      rejectHead(failure);
      rejectDone(failure);
    } finally {
      resolveDone(loaded);
      finished = true;
      resolveHead(concat(head.length ? head : [new Uint8Array(0)]));
      wake();
    }
  })();

  const stream = new ReadableStream(
    {
      async pull(controller) {
        while (queue.length === 0 && !finished) {
          await new Promise((resolve) => {
            wake = resolve;
          });
        }
        if (queue.length) controller.enqueue(concat(queue.splice(0)));
        else if (failure) controller.error(failure);
        else controller.close();
      },
    },
    { highWaterMark: 0 }, // pull only when Spark asks, so that chunks gather in between
  );
  return { stream, head: headPromise, done };
}
