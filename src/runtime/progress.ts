/**
 * Progress of a training loop: a live bar (cli-progress) on a terminal, and a
 * plain line every `every` steps elsewhere (CI logs, pipes), e.g.
 * `pretrain  step 100/1000  loss 2.3412  12,345 tok/s  eta 1m20s`.
 */
import cliProgress from 'cli-progress';

export interface ProgressOptions {
  stage: string;
  total: number;
  /** Default: process.stderr. */
  stream?: NodeJS.WritableStream;
  /** Default: whether the stream is a terminal. */
  isTTY?: boolean;
  /** Steps between plain lines when not a terminal. Default 100 (the last step is always printed). */
  every?: number;
  /** Milliseconds clock, for tests. */
  now?: () => number;
}

export interface StepStats {
  loss?: number;
  tokensPerSec?: number;
}

export interface Progress {
  /** `step` steps of `total` are done. */
  update(step: number, stats: StepStats): void;
  /** A line of its own (an eval result, a checkpoint written) that the bar does not overwrite. */
  log(line: string): void;
  stop(): void;
}

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const isTTY = options.isTTY ?? (stream as { isTTY?: boolean }).isTTY === true;
  const every = Math.max(1, options.every ?? 100);
  const now = options.now ?? Date.now;
  const { stage, total } = options;
  // The ETA is measured from the first update, so graph compilation and session start-up don't skew it.
  let first: { step: number; time: number } | null = null;
  const eta = (step: number): string => {
    if (!first || step <= first.step) return '?';
    const perStep = (now() - first.time) / (step - first.step);
    return formatDuration(((total - step) * perStep) / 1000);
  };

  if (!isTTY) {
    let lastPrinted = -1;
    return {
      update(step, stats) {
        first ??= { step, time: now() };
        if (step === lastPrinted || (step % every !== 0 && step !== total)) return;
        lastPrinted = step;
        stream.write(`${formatProgressLine(stage, step, total, stats, eta(step))}\n`);
      },
      log: (line) => void stream.write(`${line}\n`),
      stop() {},
    };
  }

  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: '{stage}  {bar}  step {value}/{total}  loss {loss}  {tps} tok/s  eta {eta}',
      hideCursor: true,
      forceRedraw: true, // redraw after log() even when the bar itself has not changed
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { stage, loss: '-', tps: '-', eta: '?' });
  return {
    update(step, stats) {
      first ??= { step, time: now() };
      bar.update(step, { loss: formatLoss(stats.loss), tps: formatRate(stats.tokensPerSec), eta: eta(step) });
    },
    log(line) {
      stream.write(`\r\x1b[2K${line}\n`);
      bar.render();
    },
    stop: () => bar.stop(),
  };
}

/** One plain progress line: stage, step/total, loss, tokens/s, ETA. */
export function formatProgressLine(stage: string, step: number, total: number, stats: StepStats, eta: string): string {
  return `${stage}  step ${step}/${total}  loss ${formatLoss(stats.loss)}  ${formatRate(stats.tokensPerSec)} tok/s  eta ${eta}`;
}

/** `45s`, `1m20s`, `2h05m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatLoss(loss: number | undefined): string {
  return loss === undefined ? '-' : loss.toFixed(4);
}

function formatRate(rate: number | undefined): string {
  return rate === undefined ? '-' : Math.round(rate).toLocaleString('en-US');
}
