/**
 * A small SVG line chart with two series on their own y axes (left and right), written without any
 * dependency. Used for the drain plot: concurrency at the receiver and delivered/s over time.
 */

const W = 900;
const H = 360;
const PAD = { left: 60, right: 70, top: 40, bottom: 45 };

function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function escape(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Renders `points` ({ x, left, right }) as SVG text. `labels` = { title, x, left, right }; `markers` are
 * horizontal reference lines on the left axis ({ y, label }).
 */
export function lineChartSvg({ points, labels, markers = [] }) {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const xMax = niceMax(Math.max(...points.map((p) => p.x), 1));
  const leftMax = niceMax(Math.max(...points.map((p) => p.left), ...markers.map((m) => m.y), 1));
  const rightMax = niceMax(Math.max(...points.map((p) => p.right), 1));
  const sx = (x) => PAD.left + (x / xMax) * plotW;
  const syL = (y) => PAD.top + plotH - (y / leftMax) * plotH;
  const syR = (y) => PAD.top + plotH - (y / rightMax) * plotH;
  const path = (sy, key) =>
    points.map((p, i) => `${i === 0 ? 'M' : 'L'}${sx(p.x).toFixed(1)},${sy(p[key]).toFixed(1)}`).join(' ');
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escape(labels.title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const y = PAD.top + (plotH * i) / 5;
    out.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${PAD.left - 6}" y="${y + 4}" text-anchor="end" fill="#1f6feb">${+(leftMax * (1 - i / 5)).toFixed(1)}</text>`);
    out.push(`<text x="${W - PAD.right + 6}" y="${y + 4}" fill="#d1242f">${+(rightMax * (1 - i / 5)).toFixed(0)}</text>`);
    const x = PAD.left + (plotW * i) / 5;
    out.push(`<text x="${x}" y="${H - PAD.bottom + 16}" text-anchor="middle">${+((xMax * i) / 5).toFixed(1)}</text>`);
  }
  out.push(`<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  for (const marker of markers) {
    const y = syL(marker.y);
    out.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" stroke="#1f6feb" stroke-dasharray="5,4"/>`);
    out.push(`<text x="${PAD.left + 6}" y="${y - 4}" fill="#1f6feb">${escape(marker.label)}</text>`);
  }
  out.push(`<path d="${path(syR, 'right')}" fill="none" stroke="#d1242f" stroke-width="1.5"/>`);
  out.push(`<path d="${path(syL, 'left')}" fill="none" stroke="#1f6feb" stroke-width="1.5"/>`);
  out.push(`<text x="${W / 2}" y="${H - 8}" text-anchor="middle">${escape(labels.x)}</text>`);
  out.push(`<text transform="translate(16 ${H / 2}) rotate(-90)" text-anchor="middle" fill="#1f6feb">${escape(labels.left)}</text>`);
  out.push(`<text transform="translate(${W - 14} ${H / 2}) rotate(90)" text-anchor="middle" fill="#d1242f">${escape(labels.right)}</text>`);
  out.push('</svg>');
  return out.join('\n');
}
