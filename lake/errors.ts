/** The first line of an error's message (DuckDB, drivers and SDKs append context lines and stacks after it). */
export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
