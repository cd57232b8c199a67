/**
 * The general (slow) path: splits one complete record into fields and checks each field. Used for
 * the header, for every unusual row, and for every bad row; ordinary rows never get here. It works
 * on bytes in reused buffers: allocating typed arrays per row would cost microseconds each.
 *
 * @module
 */

const QUOTE = 0x22;
const COMMA = 0x2c;
const DASH = 0x2d;

/** Field-splitting states, shared with the record-boundary scanner in `sales_aggregator.ts`. */
export const FIELD_START = 0;
export const IN_FIELD = 1;
export const IN_QUOTED = 2;
export const QUOTE_IN_QUOTED = 3;

const lossyUtf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Splits records into field values, reading quotes as Python's `csv` module does: a quote opens a
 * quoted field only at the start of a field, `""` inside quotes is one quote, and text after a
 * closing quote carries on as unquoted data (and marks the record bad). Field `i` of the last split
 * record is `value[starts[i], ends[i])`.
 */
export class RecordSplitter {
  value = new Uint8Array(1024);
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  /** Text followed a closing quote (other than a separator or the line break). */
  textAfterQuote = false;
  /** The record ended inside a quoted field (only possible at end of file). */
  unterminatedQuote = false;

  /** Number of fields of the last split record. */
  get count(): number {
    return this.starts.length;
  }

  /** Splits `record[0, length)`, a record without its line terminator. */
  split(record: Uint8Array, length: number): void {
    if (this.value.length < length) this.value = new Uint8Array(length);
    const value = this.value;
    const starts = this.starts;
    const ends = this.ends;
    starts.length = 0;
    ends.length = 0;
    starts.push(0);
    let end = 0;
    let state = FIELD_START;
    let textAfterQuote = false;
    for (let i = 0; i < length; i++) {
      const byte = record[i];
      if (state === IN_QUOTED) {
        if (byte === QUOTE) state = QUOTE_IN_QUOTED;
        else value[end++] = byte;
      } else if (byte === COMMA) {
        ends.push(end);
        starts.push(end);
        state = FIELD_START;
      } else if (byte === QUOTE && state !== IN_FIELD) {
        if (state === QUOTE_IN_QUOTED) value[end++] = byte; // `""` is one quote
        state = IN_QUOTED;
      } else {
        if (state === QUOTE_IN_QUOTED) textAfterQuote = true;
        value[end++] = byte;
        state = IN_FIELD;
      }
    }
    ends.push(end);
    this.textAfterQuote = textAfterQuote;
    this.unterminatedQuote = state === IN_QUOTED;
  }

  /** Field `index` decoded (invalid UTF-8 replaced) and trimmed. */
  text(index: number): string {
    return lossyUtf8.decode(this.value.subarray(this.starts[index], this.ends[index])).trim();
  }
}

const DAYS_IN_MONTH = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** True for a real proleptic Gregorian date, years 1-9999. */
function isRealDate(year: number, month: number, day: number): boolean {
  if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1) return false;
  if (month === 2 && day === 29) {
    return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  }
  return day <= DAYS_IN_MONTH[month];
}

/** True when the field `buf[start, end)`, trimmed, is `YYYY-MM-DD` with ASCII digits and a real date. */
export function isDateField(buf: Uint8Array, start: number, end: number): boolean {
  if (!isAscii(buf, start, end)) {
    return isDateText(lossyUtf8.decode(buf.subarray(start, end)).trim());
  }
  while (start < end && isAsciiSpace(buf[start])) start++;
  while (end > start && isAsciiSpace(buf[end - 1])) end--;
  if (end - start !== 10 || buf[start + 4] !== DASH || buf[start + 7] !== DASH) return false;
  const year = digitsValue(buf, start, start + 4);
  const month = digitsValue(buf, start + 5, start + 7);
  const day = digitsValue(buf, start + 8, start + 10);
  return year >= 0 && month >= 0 && day >= 0 && isRealDate(year, month, day);
}

function isDateText(text: string): boolean {
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(text)) return false;
  return isRealDate(Number(text.slice(0, 4)), Number(text.slice(5, 7)), Number(text.slice(8, 10)));
}

/** `sales` result for a field that is not one or more ASCII digits. */
export const INVALID_SALES = -1;
/** `sales` result for digits worth more than 2^53 - 1. */
const SALES_TOO_LARGE = -2;

/** The value of a trimmed sales field, or {@linkcode INVALID_SALES} / {@linkcode SALES_TOO_LARGE}. */
export function salesField(buf: Uint8Array, start: number, end: number): number {
  if (!isAscii(buf, start, end)) {
    const text = lossyUtf8.decode(buf.subarray(start, end)).trim();
    if (!/^[0-9]+$/.test(text)) return INVALID_SALES;
    // Any digit string above 2^53 - 1 parses to at least 2^53, so this comparison is exact.
    return Number(text) > Number.MAX_SAFE_INTEGER ? SALES_TOO_LARGE : Number(text);
  }
  while (start < end && isAsciiSpace(buf[start])) start++;
  while (end > start && isAsciiSpace(buf[end - 1])) end--;
  if (start === end) return INVALID_SALES;
  const value = digitsValue(buf, start, end);
  if (value < 0) return INVALID_SALES;
  return value > Number.MAX_SAFE_INTEGER ? SALES_TOO_LARGE : value;
}

/** The value of ASCII digits `buf[start, end)`, or -1 if any byte is not a digit. */
function digitsValue(buf: Uint8Array, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = buf[i] - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit; // only grows, so anything past 2^53 - 1 stays past it
  }
  return value;
}

function isAscii(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] >= 0x80) return false;
  return true;
}

/** The ASCII characters `String.prototype.trim()` removes: TAB, LF, VT, FF, CR and space. */
function isAsciiSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/** The first `count` characters (code points) of `text`. */
export function firstCharacters(text: string, count: number): string {
  if (text.length <= count) return text;
  let index = 0;
  for (let seen = 0; seen < count && index < text.length; seen++) {
    const unit = text.charCodeAt(index);
    index += unit >= 0xd800 && unit <= 0xdbff && index + 1 < text.length ? 2 : 1;
  }
  return text.slice(0, index);
}
