/**
 * Departments and their running totals, looked up by the raw bytes of the department field.
 *
 * One open-addressing hash table maps byte strings (spellings) to departments. A department's
 * name is its canonical spelling: the field decoded as strict UTF-8 and trimmed, kept as UTF-8
 * bytes in one arena, never as a JavaScript string. Every other spelling seen (" Toys", quoted
 * names are hashed without their quotes) is cached in the same table, pointing at the same
 * department, so the hot path resolves it with one probe and no decoding.
 *
 * Memory per department: its bytes once in the arena, about 50 bytes of typed arrays, and no
 * object, so a million departments fit in tens of megabytes.
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";

/** `lookup` result for a spelling not cached yet: {@linkcode DepartmentTable.find} resolves it. */
export const NOT_CACHED = -1;
/** `find` result for a field that is empty after trimming. */
export const EMPTY_DEPARTMENT = -2;
/** `find` result for a field that is not valid UTF-8. */
const INVALID_UTF8_DEPARTMENT = -3;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Spellings other than names longer than this are not cached: huge padded names cannot fill memory. */
const MAX_CACHED_KEY_BYTES = 4096;
/** Total bytes of cached spellings other than names; past it, they are resolved without caching. */
const MAX_CACHED_BYTES = 64 * 1024 * 1024;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

/** Departments, their exact totals, and the byte-keyed table of their spellings. */
export class DepartmentTable {
  readonly #maxDepartments: number;

  // Open addressing, linear probing: slot -> key index + 1. Load factor at most 1/2. The hash
  // is kept per key, not per slot: half the memory, for one more load on a probe that matches.
  #mask = 1023;
  /** 32 - log2(slots): a hash's home slot is the top bits of its Fibonacci product. */
  #shift = 22;
  #slotKey = new Int32Array(1024);
  // Keys (spellings): where their bytes are in the arena, and their department.
  #keyStart = new Int32Array(512);
  #keyLength = new Int32Array(512);
  /** The last 0-3 bytes of each spelling, packed little-endian (see {@linkcode tailWord}). */
  #keyTail = new Int32Array(512);
  #keyHash = new Int32Array(512);
  #keyDepartment = new Int32Array(512);
  #keyCount = 0;
  #arena = new Uint8Array(16 * 1024);
  /** The arena as a DataView, for comparing spellings a word at a time. */
  #arenaView = new DataView(this.#arena.buffer);
  #arenaLength = 0;
  /** Arena bytes of cached spellings that are not names (bounded by MAX_CACHED_BYTES). */
  #cachedBytes = 0;

  // Departments: the key holding the name, and the total.
  #nameKey = new Int32Array(64);
  /** Running totals below 2^53 (exact in doubles); overflow moves into a BigInt per department. */
  #low = new Float64Array(64);
  #big = new Map<number, bigint>();
  #count = 0;

  // Distinct departments per input file: each department remembers the last file that added to
  // it, so counting costs one compare per row. Stamps start at 1: a new department's 0 never matches.
  // One byte per department (a million departments: 1 MB); the stamps restart every 255 files.
  #seenIn = new Uint8Array(64);
  #file = 1;
  #fileDepartments = 0;

  /** A table refusing more than `maxDepartments` departments with RESOURCE_EXHAUSTED. */
  constructor(maxDepartments: number = Infinity) {
    this.#maxDepartments = maxDepartments;
  }

  /** Number of departments. */
  get size(): number {
    return this.#count;
  }

  /** Distinct departments added to since the last {@linkcode startFile} (or since creation). */
  get fileDepartments(): number {
    return this.#fileDepartments;
  }

  /** Starts counting {@linkcode fileDepartments} afresh, for the next input file. */
  startFile(): void {
    if (++this.#file > 255) {
      this.#seenIn.fill(0);
      this.#file = 1;
    }
    this.#fileDepartments = 0;
  }

  /**
   * The hot path's probe: the department of the spelling `view[start, start + length)` whose hash
   * is `hash` and whose last `length % 4` bytes are `tail`, or {@linkcode NOT_CACHED}.
   * Small on purpose, so that the optimizing compiler inlines it into the caller's loop.
   */
  lookup(
    view: DataView,
    start: number,
    length: number,
    hash: number,
    tail: number,
  ): number {
    const slotKey = this.#slotKey;
    const mask = this.#mask;
    const wordsEnd = start + length - (length & 3);
    let slot = homeSlot(hash, this.#shift);
    for (;;) {
      const key = slotKey[slot] - 1;
      if (key < 0) return NOT_CACHED;
      if (
        this.#keyHash[key] === hash && this.#keyLength[key] === length &&
        this.#keyTail[key] === tail
      ) {
        const arenaView = this.#arenaView;
        let a = this.#keyStart[key];
        let k = start;
        while (
          k < wordsEnd && arenaView.getInt32(a, true) === view.getInt32(k, true)
        ) {
          a += 4;
          k += 4;
        }
        if (k === wordsEnd) return this.#keyDepartment[key];
      }
      slot = (slot + 1) & mask;
    }
  }

  /**
   * The department for the raw field bytes `buf[start, end)` whose hash (see {@linkcode hashBytes})
   * is `hash`: its index, or {@linkcode EMPTY_DEPARTMENT} / {@linkcode INVALID_UTF8_DEPARTMENT}. A
   * new valid name becomes a department (throws RESOURCE_EXHAUSTED past the limit).
   */
  find(buf: Uint8Array, start: number, end: number, hash: number): number {
    const slot = this.#probe(buf, start, end, hash);
    const key = this.#slotKey[slot] - 1;
    if (key >= 0) return this.#keyDepartment[key];
    return this.#insertSpelling(buf, start, end, hash, slot);
  }

  /**
   * The department named by `name[start, end)`, bytes already canonical (valid UTF-8, trimmed,
   * not empty), as another table's names are; creates it if new.
   */
  findName(name: Uint8Array, start: number, end: number): number {
    const hash = hashBytes(name, start, end);
    const slot = this.#probe(name, start, end, hash);
    const key = this.#slotKey[slot] - 1;
    if (key >= 0) return this.#keyDepartment[key];
    return this.#createDepartment(name, start, end, hash, slot);
  }

  /** Adds `sales` (an integer at most 2^53 - 1) to a department's total. */
  add(department: number, sales: number): void {
    if (this.#seenIn[department] !== this.#file) this.#see(department);
    const low = this.#low;
    const sum = low[department] + sales;
    // Both terms are <= 2^53 - 1, so an inexact sum still compares above MAX_SAFE.
    if (sum > MAX_SAFE) this.#carry(department, sales);
    else low[department] = sum;
  }

  /** Adds an exact amount of any size to a department's total (merging tables). */
  addTotal(department: number, total: bigint): void {
    if (total <= BigInt(MAX_SAFE)) {
      this.add(department, Number(total));
    } else {
      this.#big.set(department, (this.#big.get(department) ?? 0n) + total);
    }
  }

  /** The exact total of a department. */
  total(department: number): bigint {
    return (this.#big.get(department) ?? 0n) + BigInt(this.#low[department]);
  }

  /** The decimal digits of a department's total. */
  totalText(department: number): string {
    const big = this.#big.get(department);
    const low = this.#low[department];
    return big === undefined ? String(low) : String(big + BigInt(low));
  }

  /** A department's name as UTF-8 bytes: a view into the arena, valid until the table grows. */
  nameBytes(department: number): Uint8Array {
    const key = this.#nameKey[department];
    const start = this.#keyStart[key];
    return this.#arena.subarray(start, start + this.#keyLength[key]);
  }

  /** A department's name. */
  name(department: number): string {
    return utf8.decode(this.nameBytes(department));
  }

  /**
   * Drops what only lookups need (the hash slots, and each spelling's hash, tail and department:
   * tens of megabytes for a million departments) before the output is sorted and written; names
   * and totals stay readable, and `find` must not be called any more.
   */
  seal(): void {
    const lookups = [
      this.#slotKey,
      this.#keyHash,
      this.#keyTail,
      this.#keyDepartment,
      this.#seenIn,
    ];
    for (const array of lookups) {
      release(array);
    }
    this.#mask = 0;
  }

  /** The departments ordered by name bytes, which is Unicode code point order. */
  sortedDepartments(): Int32Array {
    const count = this.#count;
    const arena = this.#arena;
    const nameKey = this.#nameKey;
    const keyStart = this.#keyStart;
    const keyLength = this.#keyLength;
    // The first 4 bytes, big-endian, decide most comparisons without a byte loop.
    const prefixes = new Uint32Array(count);
    for (let department = 0; department < count; department++) {
      const key = nameKey[department];
      const start = keyStart[key];
      const end = start + keyLength[key];
      let prefix = 0;
      for (let i = 0; i < 4; i++) {
        prefix = prefix * 256 + (start + i < end ? arena[start + i] : 0);
      }
      prefixes[department] = prefix;
    }
    const order = new Int32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
    const index: NameIndex = { arena, nameKey, keyStart, keyLength, prefixes };
    // V8's TimSort: fewer comparisons than a hand-written quicksort, for a transient copy.
    order.sort((a, b) => compareNames(index, a, b));
    release(prefixes);
    return order;
  }

  /** Index of the slot holding the spelling `buf[start, end)`, or of the empty slot ending its probe. */
  #probe(buf: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    const slotKey = this.#slotKey;
    const mask = this.#mask;
    const arena = this.#arena;
    let slot = homeSlot(hash, this.#shift);
    for (;;) {
      const key = slotKey[slot] - 1;
      if (key < 0) return slot;
      if (this.#keyHash[key] === hash && this.#keyLength[key] === length) {
        let a = this.#keyStart[key];
        let i = start;
        while (i < end && arena[a] === buf[i]) {
          a++;
          i++;
        }
        if (i === end) return slot;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** First sight of a spelling: resolves its name, creating the department if new, and caches it. */
  #insertSpelling(
    buf: Uint8Array,
    start: number,
    end: number,
    hash: number,
    slot: number,
  ): number {
    const canonical = canonicalName(buf, start, end);
    if (canonical === undefined) {
      return this.#createDepartment(buf, start, end, hash, slot);
    }
    if (typeof canonical === "number") return canonical;
    const department = this.findName(canonical, 0, canonical.length);
    const length = end - start;
    if (
      length <= MAX_CACHED_KEY_BYTES &&
      this.#cachedBytes + length <= MAX_CACHED_BYTES
    ) {
      this.#cachedBytes += length;
      // findName may have rehashed: find the empty slot again.
      this.#addKey(
        buf,
        start,
        end,
        hash,
        this.#probe(buf, start, end, hash),
        department,
      );
    }
    return department;
  }

  #createDepartment(
    name: Uint8Array,
    start: number,
    end: number,
    hash: number,
    slot: number,
  ): number {
    const department = this.#count;
    if (department >= this.#maxDepartments) {
      throw new AppError(
        Status.RESOURCE_EXHAUSTED,
        `Too many departments: the limit is ${this.#maxDepartments} distinct departments per upload`,
      );
    }
    if (department === this.#low.length) {
      this.#low = grownFloat64(this.#low);
      this.#nameKey = doubled(this.#nameKey);
      this.#seenIn = new Uint8Array(this.#seenIn.buffer.transfer(this.#seenIn.byteLength * 2));
    }
    this.#count++;
    this.#nameKey[department] = this.#keyCount;
    this.#addKey(name, start, end, hash, slot, department);
    return department;
  }

  #addKey(
    buf: Uint8Array,
    start: number,
    end: number,
    hash: number,
    slot: number,
    department: number,
  ): void {
    const length = end - start;
    if (this.#arenaLength + length > this.#arena.length) {
      const grown = new Uint8Array(
        Math.max(this.#arena.length * 2, this.#arenaLength + length),
      );
      grown.set(this.#arena.subarray(0, this.#arenaLength));
      release(this.#arena);
      this.#arena = grown;
      this.#arenaView = new DataView(grown.buffer);
    }
    this.#arena.set(buf.subarray(start, end), this.#arenaLength);
    const key = this.#keyCount++;
    if (key === this.#keyStart.length) {
      this.#keyStart = doubled(this.#keyStart);
      this.#keyLength = doubled(this.#keyLength);
      this.#keyDepartment = doubled(this.#keyDepartment);
      this.#keyTail = doubled(this.#keyTail);
      this.#keyHash = doubled(this.#keyHash);
    }
    this.#keyStart[key] = this.#arenaLength;
    this.#keyLength[key] = length;
    this.#keyDepartment[key] = department;
    this.#keyTail[key] = tailWord(buf, start, end);
    this.#keyHash[key] = hash;
    this.#arenaLength += length;
    this.#slotKey[slot] = key + 1;
    if (this.#keyCount * 2 > this.#mask) this.#rehash();
  }

  /** First row of `department` in the current file. */
  #see(department: number): void {
    this.#seenIn[department] = this.#file;
    this.#fileDepartments++;
  }

  #carry(department: number, sales: number): void {
    const low = this.#low;
    this.#big.set(
      department,
      (this.#big.get(department) ?? 0n) + BigInt(low[department]),
    );
    low[department] = sales;
  }

  #rehash(): void {
    const size = (this.#mask + 1) * 2;
    const mask = size - 1;
    const shift = this.#shift - 1;
    const slotKey = new Int32Array(size);
    for (let old = 0; old <= this.#mask; old++) {
      const key = this.#slotKey[old];
      if (key === 0) continue;
      let slot = homeSlot(this.#keyHash[key - 1], shift);
      while (slotKey[slot] !== 0) slot = (slot + 1) & mask;
      slotKey[slot] = key;
    }
    release(this.#slotKey);
    this.#mask = mask;
    this.#shift = shift;
    this.#slotKey = slotKey;
  }
}

/**
 * The canonical name of the field `buf[start, end)`: undefined when the field already is its own
 * canonical name (the common case, decided without decoding for ASCII), else its bytes, or
 * {@linkcode EMPTY_DEPARTMENT} / {@linkcode INVALID_UTF8_DEPARTMENT}.
 */
function canonicalName(
  buf: Uint8Array,
  start: number,
  end: number,
): Uint8Array | number | undefined {
  if (start === end) return EMPTY_DEPARTMENT;
  let ascii = !isAsciiSpace(buf[start]) && !isAsciiSpace(buf[end - 1]);
  for (let i = start; ascii && i < end; i++) ascii = buf[i] < 0x80;
  if (ascii) return undefined;
  let decoded: string;
  try {
    decoded = strictUtf8.decode(buf.subarray(start, end));
  } catch {
    return INVALID_UTF8_DEPARTMENT;
  }
  const name = decoded.trim();
  if (name === "") return EMPTY_DEPARTMENT;
  // Valid UTF-8 decodes and encodes back to the same bytes, so an untrimmed field is its name.
  return name.length === decoded.length ? undefined : encoder.encode(name);
}

/** What {@linkcode compareNames} reads: where each department's name is, and its first bytes. */
interface NameIndex {
  arena: Uint8Array;
  nameKey: Int32Array;
  keyStart: Int32Array;
  keyLength: Int32Array;
  /** The first 4 bytes, big-endian, zero-padded: most comparisons end here. */
  prefixes: Uint32Array;
}

/** Compares the names of departments `a` and `b` by bytes. */
function compareNames(index: NameIndex, a: number, b: number): number {
  const pa = index.prefixes[a];
  const pb = index.prefixes[b];
  if (pa !== pb) return pa < pb ? -1 : 1;
  const { arena, nameKey, keyStart, keyLength } = index;
  const keyA = nameKey[a];
  const keyB = nameKey[b];
  // Equal prefixes: a name shorter than 4 bytes is padded with zeros, so compare from 0.
  let i = keyStart[keyA];
  let j = keyStart[keyB];
  const endA = i + keyLength[keyA];
  const endB = j + keyLength[keyB];
  while (i < endA && j < endB) {
    const x = arena[i++];
    const y = arena[j++];
    if (x !== y) return x - y;
  }
  return keyLength[keyA] - keyLength[keyB];
}

/**
 * The first slot to probe for `hash`: FNV-1a's low bits barely depend on the bytes that differ in
 * names such as `Dept 0000123` (each word's low byte is alike), so the top bits of a Fibonacci
 * product pick the slot instead, or a million such names would pile up in a few runs of slots.
 */
function homeSlot(hash: number, shift: number): number {
  return Math.imul(hash, 0x9e3779b1) >>> shift;
}

/** The ASCII characters `String.prototype.trim()` removes: TAB, LF, VT, FF, CR and space. */
function isAsciiSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/**
 * Frees an array's memory now rather than at the next major garbage collection: a million
 * departments leave tens of megabytes of outgrown arrays behind, which would otherwise add up in
 * the peak RSS. The array must not be used afterwards (it is detached, its length 0).
 */
function release(array: { buffer: ArrayBuffer }): void {
  array.buffer.transfer(0);
}

/** The array at twice its length; the old one is released (its contents moved, not copied). */
function doubled(array: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  return new Int32Array(array.buffer.transfer(array.byteLength * 2));
}

function grownFloat64(array: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> {
  return new Float64Array(array.buffer.transfer(array.byteLength * 2));
}

/** FNV-1a offset basis; the hot path hashes field bytes inline with the same constants. */
export const FNV_OFFSET = 0x811c9dc5 | 0;
/** FNV-1a prime. */
export const FNV_PRIME = 0x01000193;

/** The last `(end - start) % 4` bytes of `buf[start, end)`, packed little-endian. */
function tailWord(buf: Uint8Array, start: number, end: number): number {
  let tail = 0;
  for (let i = end - ((end - start) & 3), shift = 0; i < end; i++, shift += 8) {
    tail |= buf[i] << shift;
  }
  return tail;
}

/**
 * FNV-1a hash of `buf[start, end)` as {@linkcode DepartmentTable.find} expects it: each whole
 * little-endian 32-bit word, then the {@linkcode tailWord}, as the hot path hashes while it scans.
 */
export function hashBytes(buf: Uint8Array, start: number, end: number): number {
  let hash = FNV_OFFSET;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const word = buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) |
      (buf[i + 3] << 24);
    hash = Math.imul(hash ^ word, FNV_PRIME);
  }
  return Math.imul(hash ^ tailWord(buf, start, end), FNV_PRIME);
}

/** Department names and totals moved between threads: plain arrays, transferable. */
export interface PackedTotals {
  /** The names' UTF-8 bytes, one after another. */
  names: Uint8Array<ArrayBuffer>;
  /** Where each name ends in `names`. */
  ends: Int32Array<ArrayBuffer>;
  /** Each department's total below 2^53. */
  low: Float64Array<ArrayBuffer>;
  /** Department index and the rest of its total, for totals past 2^53. */
  big: [number, bigint][];
}

/** The departments of a finished table with their exact totals, in output order (by code point). */
export class DepartmentTotals {
  readonly #table: DepartmentTable;
  #order: Int32Array | undefined;

  /** Totals read from `table`, which must not change any more. */
  constructor(table: DepartmentTable) {
    this.#table = table;
  }

  /** Number of departments. */
  get size(): number {
    return this.#table.size;
  }

  /** The name of the `index`-th department in output order, as UTF-8 bytes (do not modify). */
  nameBytes(index: number): Uint8Array {
    return this.#table.nameBytes(this.#sorted()[index]);
  }

  /** The decimal digits of the `index`-th department's total. */
  totalText(index: number): string {
    return this.#table.totalText(this.#sorted()[index]);
  }

  /** Name and total of every department, in output order. */
  *entries(): Generator<[string, bigint]> {
    const order = this.#sorted();
    for (const department of order) {
      yield [this.#table.name(department), this.#table.total(department)];
    }
  }

  /** The names and totals in the table's own order, for another thread to merge. */
  pack(): PackedTotals {
    const table = this.#table;
    const count = table.size;
    const ends = new Int32Array(count);
    const low = new Float64Array(count);
    const big: [number, bigint][] = [];
    let length = 0;
    for (let department = 0; department < count; department++) {
      length += table.nameBytes(department).length;
      ends[department] = length;
    }
    const names = new Uint8Array(length);
    const maxSafe = BigInt(MAX_SAFE);
    for (let department = 0; department < count; department++) {
      names.set(
        table.nameBytes(department),
        department === 0 ? 0 : ends[department - 1],
      );
      const total = table.total(department);
      if (total <= maxSafe) {
        low[department] = Number(total);
      } else {
        low[department] = MAX_SAFE;
        big.push([department, total - maxSafe]);
      }
    }
    return { names, ends, low, big };
  }

  #sorted(): Int32Array {
    return this.#order ??= this.#table.sortedDepartments();
  }
}

/** Adds packed totals (from another thread's table) into `table`. */
export function mergePackedTotals(
  table: DepartmentTable,
  packed: PackedTotals,
): void {
  const { names, ends, low, big } = packed;
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    table.add(table.findName(names, start, ends[i]), low[i]);
    start = ends[i];
  }
  for (const [i, rest] of big) {
    table.addTotal(
      table.findName(names, i === 0 ? 0 : ends[i - 1], ends[i]),
      rest,
    );
  }
}
