// Builds the dashboard into dist/: index.html, app.js and app.css (uPlot's CSS bundled in),
// minified, no source maps, nothing fetched at run time. The csproj embeds dist/ in the binary.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';

const out = new URL('./dist/', import.meta.url).pathname;
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: { app: 'src/app.js' },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  outdir: out,
  legalComments: 'none',
  logLevel: 'warning',
});
await copyFile('src/index.html', out + 'index.html');
