// Spark's WebAssembly (its decoders and its sort), fetched as a file of its own beside the bundle.
//
// Spark's module carries its 1.6 MB of WebAssembly as 2.2 MB of base64 text, which made three
// quarters of the bundle: a phone downloaded it inside the script, compressed worse (base64
// hides the bytes' structure from gzip and brotli), decoded it on the page's thread before the
// module could run, and fetched all of it again whenever any part of the viewer changed. The
// build (build.mjs) cuts it out of Spark's module into `spark-<hash>.wasm` and puts a call to
// `compileSparkWasm` where Spark compiled the decoded text; the gateway serves the file beside
// the bundle (brotli, immutable) and the page preloads it, so it downloads alongside the bundle.
// The bundle names the file with its Subresource Integrity hash, so the script's own `integrity`
// still covers what runs.

let compiled = null; // settles with the module, or rejects with why it could not be had
let forSpark = null;

/** Spark's compiled module (a promise, started once); `file` is resolved against the bundle's URL. */
export function compileSparkWasm(file, integrity) {
  if (forSpark) return forSpark;
  const url = new URL(file, import.meta.url);
  compiled = (async () => {
    // (an error status fails the integrity check first: the fetch itself rejects then)
    const response = await fetch(url, { integrity, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const type = response.headers.get("Content-Type") || "";
    // Streaming compilation needs the WebAssembly content type; a server without it still works.
    if (WebAssembly.compileStreaming && type.startsWith("application/wasm")) {
      return WebAssembly.compileStreaming(response);
    }
    return WebAssembly.compile(await response.arrayBuffer());
  })().catch((err) => {
    throw new Error(`Spark's WebAssembly (${url}) cannot be had: ${err && err.message ? err.message : err}`);
  });
  compiled.catch(() => {}); // the viewer reports it (sparkWasmReady), once, as its own error
  // Spark chains its start-up on this promise without a handler: on a failure it waits instead
  // of throwing unhandled rejections into the page, and the viewer shows its card.
  forSpark = compiled.catch(() => new Promise(() => {}));
  return forSpark;
}

/** Settles when Spark's WebAssembly is compiled; rejects when it cannot be fetched or compiled. */
export function sparkWasmReady() {
  return compiled || Promise.reject(new Error("Spark's WebAssembly was never requested"));
}
