// backoff.ts: the reconnect delay, the same rule as libdialogue-client's
// backoff.c: min doubled per failed attempt, capped at max, minus up to
// `jitter` of itself (so many clients cut by one event spread out).

/**
 * Delay in ms before attempt number `attempt` (0 = the first retry).
 * `random` returns a number in [0, 1) (Math.random by default).
 */
export function backoffMs(minMs: number, maxMs: number, jitter: number, attempt: number,
                          random: () => number = Math.random): number {
  let min = Math.max(1, Math.floor(minMs));
  const max = Math.max(min, Math.floor(maxMs));
  let d = min;
  for (let i = 0; i < attempt && d < max; i++) d *= 2;
  if (d > max) d = max;
  const j = Math.min(Math.max(jitter, 0), 1);
  if (j > 0) d -= Math.floor(d * j * random());
  return Math.max(d, 1);
}
