/** Figures and the tables the benchmark prints (Markdown, so they paste into README as is). */

export interface Table {
  title: string
  columns: string[]
  rows: string[][]
  /** What the figures mean or how they were made, printed under the table. */
  notes: string[]
}

/** The `p`-th percentile (0–100) by nearest rank. */
export function percentile (samples: number[], p: number): number {
  if (samples.length === 0) return NaN
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]
}

/** `a–b` over several runs (just `a` when they agree at this precision). */
export function range (values: number[], digits: number): string {
  const finite = values.filter(Number.isFinite)
  if (finite.length === 0) return 'n/a'
  const lo = Math.min(...finite).toFixed(digits)
  const hi = Math.max(...finite).toFixed(digits)
  return lo === hi ? lo : `${lo}–${hi}`
}

export function formatTable (table: Table): string {
  const widths = table.columns.map((c, i) => Math.max(c.length, ...table.rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
  return [
    `### ${table.title}`,
    '',
    line(table.columns),
    `|${widths.map(w => '-'.repeat(w + 2)).join('|')}|`,
    ...table.rows.map(line),
    '',
    ...table.notes.map(n => `- ${n}`),
    ''
  ].join('\n')
}

export const MiB = 1024 * 1024
