/**
 * A byte-level scan of a CSV file (RFC 4180: `,` delimiter, `"` quote, `""` escape) that knows what DuckDB's reader
 * does not tell: the physical line each record starts on (a quoted field may span lines), how many records there
 * are (rows in, to count against rows out), and the longest record. It also normalises CRLF record ends to LF
 * (outside quotes), so a file mixing CRLF and LF rows reads as one dialect. Pure and linear in the file size.
 */

export interface CsvScan {
  /** The bytes to hand to DuckDB: the input with every CRLF record end (outside quotes) turned into LF. */
  data: Buffer;
  /** Physical start line (1-based) of each non-empty record, header included (index 0). */
  lines: number[];
  /** Byte offset in `data` where each non-empty record starts (same indexes as `lines`). */
  starts: number[];
  /** Byte length of each non-empty record without its line end. */
  lengths: number[];
  /** Whether some record spans more than one physical line or an empty line was skipped (source_line ≠ index + 1). */
  irregular: boolean;
}

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

export function scanCsv(input: Buffer): CsvScan {
  const chunks: Buffer[] = [];
  let copyFrom = 0;
  let removed = 0;
  const lines: number[] = [];
  const starts: number[] = [];
  const lengths: number[] = [];
  let irregular = false;
  let line = 1;
  let inQuotes = false;
  let recStart = 0; // in input
  let recLine = 1;
  const endRecord = (end: number, crlf: boolean): void => {
    const len = end - recStart - (crlf ? 1 : 0);
    if (len > 0) {
      lines.push(recLine);
      starts.push(recStart - removed);
      lengths.push(len);
      if (recLine !== lines.length) irregular = true;
    } else {
      irregular = true;
    }
  };
  for (let i = 0; i < input.length; i++) {
    const b = input[i];
    if (b === QUOTE) inQuotes = !inQuotes;
    else if (b === LF) {
      line++;
      if (inQuotes) continue;
      const crlf = i > recStart && input[i - 1] === CR;
      endRecord(i, crlf);
      if (crlf) {
        chunks.push(input.subarray(copyFrom, i - 1));
        copyFrom = i;
        // offsets after this point move back by one byte
      }
      // record starts are recorded relative to `data`, so count the removed CR before the next record starts
      if (crlf) removed++;
      recStart = i + 1;
      recLine = line;
    }
  }
  if (recStart < input.length) endRecord(input.length, false);
  if (copyFrom === 0) return { data: input, lines, starts, lengths, irregular };
  chunks.push(input.subarray(copyFrom));
  return { data: Buffer.concat(chunks), lines, starts, lengths, irregular };
}

/** The record (index into `scan.lines`) a byte offset of `scan.data` falls in. */
export function recordAt(scan: CsvScan, offset: number): number {
  let lo = 0;
  let hi = scan.starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (scan.starts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** 1-based column and byte length of the longest field of record `index`. */
export function longestField(scan: CsvScan, index: number): { column: number; bytes: number } {
  const from = scan.starts[index];
  const to = from + scan.lengths[index];
  let column = 1;
  let best = { column: 1, bytes: 0 };
  let fieldStart = from;
  let inQuotes = false;
  for (let i = from; i <= to; i++) {
    const b = i < to ? scan.data[i] : COMMA;
    if (b === QUOTE) inQuotes = !inQuotes;
    else if (b === COMMA && !inQuotes) {
      if (i - fieldStart > best.bytes) best = { column, bytes: i - fieldStart };
      column++;
      fieldStart = i + 1;
    }
  }
  return best;
}

/** The first field of record `index` as text (quotes removed, `""` unescaped). */
export function firstField(scan: CsvScan, index: number): string {
  const from = scan.starts[index];
  const to = from + scan.lengths[index];
  let inQuotes = false;
  let i = from;
  for (; i < to; i++) {
    const b = scan.data[i];
    if (b === QUOTE) inQuotes = !inQuotes;
    else if (b === COMMA && !inQuotes) break;
  }
  const raw = scan.data.subarray(from, i).toString('utf8');
  return raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2 ? raw.slice(1, -1).replace(/""/g, '"') : raw;
}
