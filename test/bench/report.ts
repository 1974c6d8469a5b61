import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Summary } from './stats.js';

export type Unit = 'ms' | 'MiB' | 'MiB/s' | 'ops/s' | 'count' | 'millicores';

/** One line of the table: a figure next to its baseline from the same run, and whether it meets the target. */
export interface Row {
  figure: string;
  /** null: not measured (n/a or failed; `note` says why). */
  value: number | null;
  unit: Unit;
  baselineLabel?: string;
  baseline?: number | null;
  /** value / baseline. */
  ratio?: number | null;
  /** value − baseline, in the row's unit (shown instead of the ratio when the target is a difference). */
  delta?: number | null;
  target?: string;
  /** null when the row has no target or was not measured. */
  pass: boolean | null;
  note?: string;
}

export interface CompareOptions {
  /** The target for this row, e.g. `{ text: '≤ 1.2× baseline', check: (v, b) => v <= 1.2 * b }`. */
  target?: { text: string; check: (value: number, baseline: number) => boolean };
  /** Show the difference instead of the ratio. */
  by?: 'ratio' | 'delta';
  note?: string;
}

/** Builds a row that compares `value` with `baseline`, judged by the target when there is one. */
export function compareRow(figure: string, unit: Unit, value: number, baselineLabel: string, baseline: number, options: CompareOptions = {}): Row {
  const { target, note } = options;
  const row: Row = { figure, value, unit, baselineLabel, baseline, pass: target ? target.check(value, baseline) : null, note };
  if (options.by === 'delta') row.delta = value - baseline;
  else row.ratio = value / baseline;
  if (target) row.target = target.text;
  return row;
}

export function missingRow(figure: string, unit: Unit, why: string, target?: string): Row {
  return { figure, value: null, unit, target, pass: null, note: why };
}

function formatValue(value: number | null | undefined, unit: Unit): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  switch (unit) {
    case 'ms':
      if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
      return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
    case 'MiB':
      return `${value.toFixed(1)} MiB`;
    case 'MiB/s':
      return `${value.toFixed(value < 100 ? 1 : 0)} MiB/s`;
    case 'ops/s':
      return `${value.toFixed(1)}/s`;
    case 'count':
      return String(Math.round(value));
    case 'millicores':
      return `${value.toFixed(2)} millicores`;
  }
}

function compareText(row: Row): string {
  if (row.delta !== undefined && row.delta !== null) return `${row.delta >= 0 ? '+' : '−'}${formatValue(Math.abs(row.delta), row.unit)}`;
  if (row.ratio !== undefined && row.ratio !== null && Number.isFinite(row.ratio)) return `${row.ratio.toFixed(2)}×`;
  return '';
}

function resultText(row: Row): string {
  if (row.value === null) return row.note?.startsWith('n/a') ? 'n/a' : 'ERROR';
  if (row.pass === null) return '';
  return row.pass ? 'pass' : 'MISS';
}

/** The table as plain text, one row per figure; notes below it. */
export function renderTable(rows: readonly Row[]): string {
  const header = ['figure', 'value', 'baseline (same run)', 'ratio', 'target', 'result'];
  const cells = rows.map((row) => [
    row.figure,
    row.value === null ? (row.note ?? '—') : formatValue(row.value, row.unit),
    row.baselineLabel ? `${formatValue(row.baseline, row.unit)}  ${row.baselineLabel}` : '',
    compareText(row),
    row.target ?? '',
    resultText(row),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
  const notes = rows.filter((r) => r.value !== null && r.note).map((r) => `  · ${r.figure}: ${r.note}`);
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line), ...(notes.length ? ['', 'notes:', ...notes] : [])].join('\n');
}

export interface BenchReport {
  profile: string;
  started_at: string;
  finished_at: string;
  environment: Record<string, unknown>;
  rows: Row[];
  /** Every method's timings summarized (ms), keyed by figure and method. */
  samples: Record<string, Record<string, Summary>>;
  extras: Record<string, unknown>;
  errors: string[];
}

export async function writeReport(path: string, report: BenchReport): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
}

/**
 * The docs page of the latest full run: when, on what and with which command, then the table. Each full run
 * replaces it, so the figures in the docs always come from one run.
 */
export function renderLatestPage(report: BenchReport, command: string): string {
  const env = report.environment;
  const machine = [
    `${env.cpus ?? '?'} CPUs`,
    `${env.memory_mib ?? '?'} MiB RAM`,
    `Docker ${env.docker_server ?? '?'}`,
    `Node ${env.node ?? '?'}`,
    `load average ${(env.loadavg_at_start as number[] | undefined)?.[0]?.toFixed(1) ?? '?'} at start`,
  ].join(', ');
  const commit = `${env.git_commit ?? '?'}${env.git_dirty ? ' (with uncommitted changes)' : ''}`;
  return [
    '# Latest benchmark results',
    '',
    `Written by \`${command}\`; each full run replaces this page. How each figure is measured: [benchmarks.md](benchmarks.md).`,
    '',
    `- **When:** ${report.started_at} to ${report.finished_at}`,
    `- **On what:** ${machine}`,
    `- **Code:** commit ${commit}`,
    '',
    renderTable(report.rows),
    ...(report.errors.length > 0 ? ['', 'Errors:', '', ...report.errors.map((e) => `- ${e.split('\n')[0]}`)] : []),
    '',
  ].join('\n');
}

export async function writeLatestPage(path: string, report: BenchReport, command: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, renderLatestPage(report, command));
}
