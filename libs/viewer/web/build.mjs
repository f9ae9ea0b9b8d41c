// Builds the one ES module the gateway and the dashboard serve: dist/foto3d-viewer-<version>.<hash>.js
// and dist/manifest.json (file name, bytes, SRI hash) that libs/viewer/assets.py reads.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { build } from "esbuild";

const pkg = JSON.parse(readFileSync("package.json", "utf8"));
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
});
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
const sri = `sha384-${createHash("sha384").update(code).digest("base64")}`;
const manifest = { file, version: pkg.version, bytes: code.length, sri };
writeFileSync("dist/manifest.json", JSON.stringify(manifest, null, 2) + "\n");
console.log(`built dist/${file} (${code.length} bytes)`);
