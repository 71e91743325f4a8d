// What every browser script run by tests/it does on its way out: a failure
// is one `FAIL …` line on stderr and exit code 1, and a watchdog ends a run
// that outlives its bound whatever else hangs.

export function fail(message) {
  console.error(`FAIL ${message}`);
  process.exit(1);
}

/** Ends the process with a failure after `ms`, unless it exited before. */
export function watchdog(ms) {
  setTimeout(() => fail(`the run did not finish within ${ms} ms`), ms).unref();
}
