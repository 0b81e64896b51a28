// Reading the output of the commands the checks run.

export const firstLine = (s: string) => s.trim().split('\n')[0] ?? '';

/** A JSON list (`ip -json ...`), or [] when the output is anything else. */
export function parseJsonList<T>(stdout: string): T[] {
  try {
    const v = JSON.parse(stdout || '[]') as unknown;
    return Array.isArray(v) ? (v as T[]) : [];
  } catch {
    return [];
  }
}
