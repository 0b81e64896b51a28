// Checks of numeric command-line flags, shared by every command: yargs turns "abc" into NaN, and a
// message must say what was given in the user's terms, never "NaN".

/** How a flag's number is shown in a message: "abc" (NaN) as "not a number". */
export function givenText(n: number): string {
  return Number.isNaN(n) ? 'not a number' : String(n);
}

/** The problem with --timeout (seconds, above 0, at most an hour), or null. */
export function timeoutProblem(seconds: number): string | null {
  return Number.isFinite(seconds) && seconds > 0 && seconds <= 3600
    ? null
    : `--timeout must be a number of seconds above 0 and at most 3600; got ${givenText(seconds)}`;
}

/** The problem with a whole-number flag that must lie in [min, max], or null. */
export function wholeNumberProblem(
  flag: string,
  n: number,
  min: number,
  max: number,
  what = 'a whole number',
): string | null {
  return Number.isInteger(n) && n >= min && n <= max
    ? null
    : `${flag} must be ${what} from ${min} to ${max}; got ${givenText(n)}`;
}
