/**
 * Deterministic crash injection for the recovery tests and `cpa chaos`: with `CPA_CRASH_AT=<point>` in its
 * environment, a process kills itself with SIGKILL when it reaches `<point>` — e.g. `after-commit:bronze.usage_events`
 * (right after that step's lake transaction committed, before the activity reports back). Unset (always, outside
 * tests), it does nothing.
 */
export function crashPoint(point: string): void {
  if (process.env.CPA_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
