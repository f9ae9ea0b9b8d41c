// Builds the one ES module the gateway and the dashboard serve: dist/foto3d-viewer-<version>.<hash>.js
// and dist/manifest.json (file name, bytes, SRI hash) that libs/viewer/assets.py reads.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { build } from "esbuild";

const pkg = JSON.parse(readFileSync("package.json", "utf8"));

// Spark inlines its WebAssembly as base64 (`const WASM = decode64("…").buffer`, compiled by
// `WebAssembly.compile(WASM)`): 2.2 MB of the bundle's 3.1 MB. This plugin cuts it out into a
// file of its own and has Spark compile what src/sparkwasm.js fetches instead. A Spark release
// that writes those lines differently fails the build here, rather than shipping it twice.
const INLINE_WASM = /const WASM = decode64\("([A-Za-z0-9+/=]+)"\)(?:\.buffer)?;/;
const COMPILE_WASM = "const WASM_MODULE = WebAssembly.compile(WASM);";
let wasm = null; // { file, bytes, sri, data }
const sparkWasmAsFile = {
  name: "spark-wasm-as-file",
  setup(b) {
    b.onLoad({ filter: /@sparkjsdev[\\/]spark[\\/]dist[\\/]spark\.module\.js$/ }, (args) => {
      let source = readFileSync(args.path, "utf8");
      const inline = INLINE_WASM.exec(source);
      if (!inline || !source.includes(COMPILE_WASM)) {
        throw new Error(`${args.path}: Spark's inline WebAssembly is not where build.mjs expects it`);
      }
      const data = Buffer.from(inline[1], "base64");
      const hash = createHash("sha256").update(data).digest("hex").slice(0, 12);
      const sri = `sha384-${createHash("sha384").update(data).digest("base64")}`;
      wasm = { file: `spark-${pkg.dependencies["@sparkjsdev/spark"]}.${hash}.wasm`, bytes: data.length, sri, data };
      const helper = JSON.stringify(resolve("src/sparkwasm.js"));
      source = `import { compileSparkWasm as __foto3dCompileSparkWasm } from ${helper};\n` + source
        .replace(inline[0], "")
        .replace(COMPILE_WASM, `const WASM_MODULE = __foto3dCompileSparkWasm(${JSON.stringify(wasm.file)}, ${JSON.stringify(sri)});`);
      return { contents: source, loader: "js" };
    });
  },
};
const result = await build({
  entryPoints: ["src/viewer.js"],
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  loader: { ".glsl": "text" }, // the viewer's shaders (src/shaders), inlined as strings
  write: false,
  legalComments: "eof", // three.js and Spark are MIT: keep their notices in the file
  define: { __FOTO3D_VIEWER_VERSION__: JSON.stringify(pkg.version) },
  logLevel: "warning",
  plugins: [sparkWasmAsFile],
});
if (!wasm) throw new Error("Spark's module was not bundled: no WebAssembly to write");
const code = result.outputFiles[0].contents;
const hash = createHash("sha256").update(code).digest("hex").slice(0, 12);
const file = `foto3d-viewer-${pkg.version}.${hash}.js`;
mkdirSync("dist", { recursive: true });
for (const old of readdirSync("dist")) rmSync(`dist/${old}`);
writeFileSync(`dist/${file}`, code);
// Precompressed copies: aiohttp's FileResponse sends one of these when the browser accepts it
// (brotli only reaches browsers over HTTPS). The SRI hash is over the decoded file, so it holds.
writeFileSync(`dist/${file}.gz`, gzipSync(code, { level: 9 }));
writeFileSync(`dist/${file}.br`, brotliCompressSync(code, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
writeFileSync(`dist/${wasm.file}`, wasm.data);
writeFileSync(`dist/${wasm.file}.gz`, gzipSync(wasm.data, { level: 9 }));
writeFileSync(
  `dist/${wasm.file}.br`,
  brotliCompressSync(wasm.data, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_GENERIC },
  }),
);
const sri = `sha384-${createHash("sha384").update(code).digest("base64")}`;
const manifest = {
  file,
  version: pkg.version,
  bytes: code.length,
  sri,
  wasm: { file: wasm.file, bytes: wasm.bytes, sri: wasm.sri },
};
writeFileSync("dist/manifest.json", JSON.stringify(manifest, null, 2) + "\n");
console.log(`built dist/${file} (${code.length} bytes) and dist/${wasm.file} (${wasm.bytes} bytes)`);
