/**
 * The daemon's signals, caught from the program's first instruction: SIGTERM and SIGINT stop,
 * SIGHUP reopens the log and reloads the allow-list. A signal that comes before the daemon can
 * act on it (during the start-up parse of a large allow-list) waits for its action instead of
 * ending the process with the default action (SIGHUP's kills).
 */

/** The signals the daemon handles, each waiting for its action until one is set. */
export class Signals {
  #stop: (() => void) | null = null;
  #reload: (() => void) | null = null;
  #stopPending = false;
  #reloadPending = false;
  #listeners: [Deno.Signal, () => void][] = [];

  /** Installs the listeners now. */
  constructor() {
    const stop = () => this.#stop === null ? this.#stopPending = true : this.#stop();
    const reload = () => this.#reload === null ? this.#reloadPending = true : this.#reload();
    this.#listeners = [["SIGTERM", stop], ["SIGINT", stop], ["SIGHUP", reload]];
    for (const [signal, listener] of this.#listeners) Deno.addSignalListener(signal, listener);
  }

  /** Sets what SIGTERM and SIGINT do; runs it now if one came already. */
  onStop(action: () => void): void {
    this.#stop = action;
    if (this.#stopPending) action();
  }

  /** Sets what SIGHUP does; runs it now if one came already (once for any number). */
  onReload(action: () => void): void {
    this.#reload = action;
    if (this.#reloadPending) action();
    this.#reloadPending = false;
  }

  /** Removes the listeners: the signals' default actions apply again. */
  close(): void {
    for (const [signal, listener] of this.#listeners) Deno.removeSignalListener(signal, listener);
    this.#listeners = [];
  }
}
