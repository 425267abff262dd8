// Opens an HTML page we ship in a real headless browser (Debian's Chromium, driven by the
// published playwright-core) and prints, as one JSON object, what the browser saw:
//   errors    console errors and warnings, uncaught exceptions, failed requests;
//   requests  every URL the page asked for besides itself (a self-contained page asks none);
//   plots     per `figure.plot`: the SVG's laid-out size, how many of its lines have length,
//             how many texts have width, and `ink`: pixels of colour after the browser itself
//             rasterised the SVG onto a canvas (a plot that draws nothing has none);
//   sections  the ids of every <section>; tables: the row count of every <table>;
//   steps     with a STEPS.json (a list of actions), what each action saw, in order:
//             {"select": SEL, "value": V} chooses an option; {"fill": SEL, "value": V} types;
//             {"click": SEL} clicks the first match; {"count": SEL} counts the matches that are
//             displayed; {"text": SEL} reads the first match's text; {"ink": SEL} rasterises the
//             first matching SVG as for plots (coloured pixels).
// The caller asserts on those numbers. Usage: node check.js PAGE.html [STEPS.json]
// CHROMIUM names the browser binary (default /usr/bin/chromium). Exit 2 if it cannot run.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

async function main() {
  const file = path.resolve(process.argv[2] || '');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // This machine's network is closed: no background fetches, no QUIC, no first-run work.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors = [];
    const requests = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push({ kind: 'console', text: m.text() });
    });
    page.on('pageerror', (e) => errors.push({ kind: 'pageerror', text: String(e) }));
    page.on('requestfailed', (r) => errors.push({ kind: 'requestfailed', text: r.url() }));
    page.on('request', (r) => { if (r.url() !== 'file://' + file) requests.push(r.url()); });
    const response = await page.goto('file://' + file, { waitUntil: 'load' });
    // Coloured (not grey) pixels of an SVG after the browser rasterised it onto a canvas.
    await page.evaluate(() => {
      window.__ink = (svg) => new Promise((resolve) => {
        const image = new Image();
        image.onload = () => {
          const canvas = document.createElement('canvas');
          canvas.width = image.naturalWidth || 900;
          canvas.height = image.naturalHeight || 360;
          const context = canvas.getContext('2d');
          context.drawImage(image, 0, 0);
          const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
          let ink = 0;
          for (let i = 0; i < data.length; i += 4) {
            const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
            if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) ink += 1;
          }
          resolve(ink);
        };
        image.onerror = () => resolve(-1);
        const xml = new XMLSerializer().serializeToString(svg);
        image.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(xml);
      });
    });
    const plots = await page.$$eval('figure.plot', (figures) => Promise.all(figures.map((figure) => {
      const svg = figure.querySelector('svg');
      if (!svg) return { id: figure.id, width: 0, height: 0, lines: 0, texts: 0, ink: 0 };
      const box = svg.getBoundingClientRect();
      const lines = [...svg.querySelectorAll('polyline, path, line')]
        .filter((l) => { try { return l.getTotalLength() > 0; } catch (e) { return false; } }).length;
      const texts = [...svg.querySelectorAll('text')].filter((t) => t.getComputedTextLength() > 0).length;
      return window.__ink(svg).then((ink) => ({ id: figure.id, width: box.width, height: box.height, lines, texts, ink }));
    })));
    const sections = await page.$$eval('section', (all) => all.map((s) => s.id));
    const tables = await page.$$eval('table', (all) => all.map((t) => t.rows.length));
    const steps = [];
    for (const step of process.argv[3] ? JSON.parse(fs.readFileSync(process.argv[3], 'utf8')) : []) {
      if (step.select) { await page.selectOption(step.select, step.value); steps.push(null); }
      else if (step.fill) { await page.fill(step.fill, step.value); steps.push(null); }
      else if (step.click) { await page.click(step.click); steps.push(null); }
      else if (step.count) {
        steps.push(await page.$$eval(step.count, (all) => all.filter((e) => e.getClientRects().length > 0).length));
      } else if (step.text) { steps.push(await page.textContent(step.text)); }
      else if (step.ink) { steps.push(await page.$eval(step.ink, (svg) => window.__ink(svg))); }
      else throw new Error('unknown step ' + JSON.stringify(step));
    }
    const status = response ? response.status() : null;
    process.stdout.write(JSON.stringify({ title: await page.title(), status, errors, requests, plots, sections, tables, steps }) + '\n');
  } finally {
    await browser.close();
  }
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(2); });
