// The tour's output: one table row per step, printed as each step finishes, with indented detail lines under
// a row for excerpts (headers, /health, /metrics).

export interface Row {
  n: number;
  step: string;
  ok: boolean;
  result: string;
  ms: number;
  details: string[];
}

/** What a step's body returns: the one-line result, optional detail lines, and a value later steps use. */
export interface StepOutcome<T> {
  result: string;
  details?: string[];
  value?: T;
}

/** Thrown by a step that saw the wrong behaviour; its message is the row's result. */
export class StepFailed extends Error {
  constructor(
    message: string,
    readonly details: string[] = [],
  ) {
    super(message);
    this.name = 'StepFailed';
  }
}

/** Fails the step with `message` unless `cond` holds. */
export function expectThat(cond: unknown, message: string, details?: string[]): asserts cond {
  if (!cond) throw new StepFailed(message, details);
}

const W_STEP = 34;
const W_RESULT = 74;
const W_MS = 7;

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      if (line && line.length + 1 + word.length > width) {
        out.push(line);
        line = '';
      }
      let w = word;
      while (w.length > width) {
        out.push(w.slice(0, width));
        w = w.slice(width);
      }
      line = line ? `${line} ${w}` : w;
    }
    out.push(line);
  }
  return out;
}

export class TourTable {
  readonly rows: Row[] = [];
  #headerPrinted = false;
  constructor(private readonly write: (s: string) => void = (s) => process.stdout.write(s)) {}

  #header() {
    if (this.#headerPrinted) return;
    this.#headerPrinted = true;
    const h = ` ${'#'.padStart(2)}  ${'step'.padEnd(W_STEP)}  ${'result'.padEnd(W_RESULT)}  ${'ms'.padStart(W_MS)}  ok`;
    this.write(`${h}\n ${'-'.repeat(h.length - 1)}\n`);
  }

  print(row: Row): void {
    this.#header();
    const stepLines = wrap(row.step, W_STEP);
    const resultLines = wrap(row.result, W_RESULT);
    const n = Math.max(stepLines.length, resultLines.length);
    for (let i = 0; i < n; i++) {
      const first = i === 0;
      this.write(
        ` ${(first ? String(row.n) : '').padStart(2)}  ${(stepLines[i] ?? '').padEnd(W_STEP)}  ${(resultLines[i] ?? '').padEnd(W_RESULT)}  ${(first ? String(Math.round(row.ms)) : '').padStart(W_MS)}  ${first ? (row.ok ? 'ok' : 'FAIL') : ''}`.trimEnd() +
          '\n',
      );
    }
    for (const d of row.details) {
      for (const l of wrap(d, W_STEP + W_RESULT)) this.write(`${' '.repeat(6)}| ${l}\n`);
    }
  }

  /** Runs one step, prints its row, and returns the step's value (undefined when it failed). */
  async step<T>(name: string, fn: () => Promise<StepOutcome<T>>): Promise<T | undefined> {
    const t0 = performance.now();
    let row: Row;
    let value: T | undefined;
    try {
      const o = await fn();
      value = o.value;
      row = {
        n: this.rows.length + 1,
        step: name,
        ok: true,
        result: o.result,
        ms: performance.now() - t0,
        details: o.details ?? [],
      };
    } catch (e) {
      const err = e as Error;
      row = {
        n: this.rows.length + 1,
        step: name,
        ok: false,
        result: err instanceof StepFailed ? err.message : `error: ${err.message}`,
        ms: performance.now() - t0,
        details: err instanceof StepFailed ? err.details : [],
      };
    }
    this.rows.push(row);
    this.print(row);
    return value;
  }

  get ok(): boolean {
    return this.rows.length > 0 && this.rows.every((r) => r.ok);
  }

  summary(totalMs: number): string {
    const failed = this.rows.filter((r) => !r.ok);
    return failed.length === 0
      ? `\nall ${this.rows.length} steps behaved as expected (${(totalMs / 1000).toFixed(1)} s)\n`
      : `\n${failed.length} of ${this.rows.length} steps did NOT behave: ${failed.map((r) => `#${r.n} ${r.step}`).join(', ')} (${(totalMs / 1000).toFixed(1)} s)\n`;
  }
}
