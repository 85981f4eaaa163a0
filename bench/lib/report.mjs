/**
 * Rows of the benchmark table and how they are printed. A row compares one figure of ours with a limit
 * or a peer measured in the same run; its verdict is computed from the numbers, never set by hand.
 */

/** Formats a rate or count with thousands separators. */
export function fmt(value, digits = 0) {
  if (value === undefined || value === null || Number.isNaN(value)) return '-';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Formats a ratio such as `0.62x`. */
export function fmtRatio(ratio) {
  return ratio === undefined || !Number.isFinite(ratio) ? '-' : `${ratio.toFixed(2)}x`;
}

/**
 * A row with a numeric target. `direction` is `'>='` (higher is better) or `'<='`.
 * The verdict is PASS when `value direction target` holds, MISS otherwise.
 */
export function targetRow({ id, what, ours, against, value, valueText, direction, target, targetText, note }) {
  const pass = direction === '>=' ? value >= target : value <= target;
  const shown = valueText ?? fmtRatio(value);
  return { id, what, ours, against, value, shown, target: targetText, verdict: pass ? 'PASS' : 'MISS', note };
}

/** A row that is reported for information only (no target from the issue). */
export function infoRow({ id, what, ours, against = '', value, valueText, note }) {
  return { id, what, ours, against, value, shown: valueText ?? fmtRatio(value), target: '-', verdict: 'INFO', note };
}

/** A row that could not be measured, with the reason stated plainly. */
export function missingRow({ id, what, reason, target = '-', against = '-' }) {
  return { id, what, ours: '-', against, value: undefined, shown: '-', target, verdict: 'NOT MEASURED', note: reason };
}

/** A row skipped for a reason outside the package (for example redis-server not installed). */
export function skippedRow({ id, what, reason, target = '-' }) {
  return { id, what, ours: '-', against: '-', value: undefined, shown: '-', target, verdict: 'SKIPPED', note: reason };
}

const COLUMNS = [
  ['#', 'id'],
  ['measurement', 'what'],
  ['ours', 'ours'],
  ['against (same run)', 'against'],
  ['ratio/value', 'shown'],
  ['target', 'target'],
  ['verdict', 'verdict'],
];

/** Renders rows as a fixed-width text table followed by the notes. */
export function renderTable(rows) {
  const cells = rows.map((row) => COLUMNS.map(([, key]) => String(row[key] ?? '')));
  const widths = COLUMNS.map(([title], i) => Math.max(title.length, ...cells.map((c) => c[i].length)));
  const line = (values) => values.map((v, i) => v.padEnd(widths[i])).join(' | ');
  const out = [line(COLUMNS.map(([title]) => title)), widths.map((w) => '-'.repeat(w)).join('-|-')];
  for (const c of cells) out.push(line(c));
  const notes = rows.filter((row) => row.note);
  if (notes.length > 0) {
    out.push('', 'Notes:');
    for (const row of notes) out.push(`  [${row.id}] ${row.note}`);
  }
  return out.join('\n');
}
