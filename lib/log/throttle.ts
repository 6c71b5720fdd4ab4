/** Rate limiting for reports of repeated failures, so that a flood of errors stays readable. */

/**
 * Counts failures and says when to report them: a failure report at most once per interval,
 * with the count since the last report; a recovery report at once after a reported failure
 * (the admin was told it fails), else with the next failure report's timing. A target that
 * fails and recovers many times a second thus gives at most two lines per interval.
 */
export class Throttle {
  /** Failures counted since the last report. */
  pending = 0;
  /** Whether a recovery is yet to be reported: a failure was, or failures are pending. */
  open = false;
  #toldFailure = false;
  #intervalMs: number;
  #clock: () => number;
  #last = -Infinity;

  /**
   * Reports at most once per `intervalMs` of `clock`: monotonic milliseconds (default
   * `performance.now`). The wall clock would not do: set back (NTP, a restored VM snapshot),
   * it would keep every interval from ending and silence the reports.
   */
  constructor(intervalMs: number, options: { clock?: () => number } = {}) {
    this.#intervalMs = intervalMs;
    this.#clock = options.clock ?? (() => performance.now());
  }

  /** Counts `count` failures (default 1); returns the count to report now, or `null`. */
  fail(count = 1): number | null {
    this.pending += count;
    this.open = true;
    if (!this.#due()) return null;
    this.#toldFailure = true;
    return this.#take();
  }

  /** After a success: the failures to report with the recovery now, or `null` (not yet). */
  recover(): number | null {
    if (!this.#toldFailure && !this.#due()) return null;
    this.#toldFailure = false;
    this.open = false;
    return this.#take();
  }

  #due(): boolean {
    const now = this.#clock();
    if (now - this.#last < this.#intervalMs) return false;
    this.#last = now;
    return true;
  }

  #take(): number {
    const count = this.pending;
    this.pending = 0;
    return count;
  }
}
