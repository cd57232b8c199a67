/**
 * Departments and their running totals, looked up by the raw bytes of the department field.
 *
 * The hot path hashes the field's bytes while it scans them and asks {@linkcode DepartmentTable.find}
 * for the department; only the first time a byte sequence is seen is it decoded, validated and
 * trimmed. Different raw spellings of one name (" Toys" and "Toys") map to the same department.
 *
 * @module
 */

import { AppError, Status } from "../errors.ts";

/** `find` result for a field that is empty after trimming. */
export const EMPTY_DEPARTMENT = -1;
/** `find` result for a field that is not valid UTF-8. */
export const INVALID_UTF8_DEPARTMENT = -2;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Raw spellings longer than this are not cached: a hostile file of huge names cannot fill memory. */
const MAX_CACHED_KEY_BYTES = 4096;
/** Total bytes of cached raw spellings; past it, new spellings are resolved without caching. */
const MAX_ARENA_BYTES = 64 * 1024 * 1024;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Department names, their exact totals, and a byte-keyed cache of raw spellings. */
export class DepartmentTable {
  /** Department names in order of first appearance. */
  readonly names: string[] = [];
  /** True once a name holds a UTF-16 unit where UTF-16 order differs from code point order. */
  hasHighUnits = false;

  #byName = new Map<string, number>();
  /**
   * Running totals below 2^53 (exact in doubles); overflow moves into a BigInt per department.
   * Public, like the hash table fields below, because the hot path inlines the probe and the add.
   */
  low = new Float64Array(64);
  #big: (bigint | undefined)[] = [];
  #maxDepartments: number;

  /** Open-addressing hash table of raw spellings: slot -> (hash, key index + 1). */
  mask = 1023;
  slotHash = new Int32Array(1024);
  slotKey = new Int32Array(1024);
  keyStart = new Int32Array(512);
  keyLength = new Int32Array(512);
  keyDepartment = new Int32Array(512);
  /** The last 0-3 bytes of each spelling, packed little-endian (see {@linkcode tailWord}). */
  keyTail = new Int32Array(512);
  #keyCount = 0;
  arena = new Uint8Array(16 * 1024);
  /** The arena as a DataView, for comparing names a word at a time. */
  arenaView = new DataView(this.arena.buffer);
  arenaLength = 0;

  constructor(maxDepartments: number) {
    this.#maxDepartments = maxDepartments;
  }

  /**
   * The department for the raw field bytes `buf[start, end)` whose FNV-1a hash is `hash`: its index,
   * or {@linkcode EMPTY_DEPARTMENT} / {@linkcode INVALID_UTF8_DEPARTMENT}. A new valid name becomes a
   * department (throws RESOURCE_EXHAUSTED past the limit).
   */
  find(buf: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    const slotKey = this.slotKey;
    const mask = this.mask;
    let slot = hash & mask;
    for (;;) {
      const key = slotKey[slot];
      if (key === 0) return this.#insert(buf, start, end, hash, slot);
      if (this.slotHash[slot] === hash && this.keyLength[key - 1] === length) {
        const arena = this.arena;
        let a = this.keyStart[key - 1];
        let i = start;
        while (i < end && arena[a] === buf[i]) {
          a++;
          i++;
        }
        if (i === end) return this.keyDepartment[key - 1];
      }
      slot = (slot + 1) & mask;
    }
  }

  /** The department for a name already decoded and trimmed (the slow path); creates it if new. */
  findName(name: string): number {
    return this.#byName.get(name) ?? this.#create(name);
  }

  /** Adds `sales` (an integer at most 2^53 - 1) to a department's total. */
  add(department: number, sales: number): void {
    const low = this.low;
    const sum = low[department] + sales;
    // Both terms are <= 2^53 - 1, so an inexact sum still compares above MAX_SAFE.
    if (sum > MAX_SAFE) {
      this.#big[department] = (this.#big[department] ?? 0n) + BigInt(low[department]);
      low[department] = sales;
    } else {
      low[department] = sum;
    }
  }

  /** The exact total of a department. */
  total(department: number): bigint {
    return (this.#big[department] ?? 0n) + BigInt(this.low[department]);
  }

  #insert(buf: Uint8Array, start: number, end: number, hash: number, slot: number): number {
    const department = this.#resolve(buf.subarray(start, end));
    const length = end - start;
    if (length > MAX_CACHED_KEY_BYTES || this.arenaLength + length > MAX_ARENA_BYTES) {
      return department;
    }
    if (this.arenaLength + length > this.arena.length) {
      const grown = new Uint8Array(Math.max(this.arena.length * 2, this.arenaLength + length));
      grown.set(this.arena.subarray(0, this.arenaLength));
      this.arena = grown;
      this.arenaView = new DataView(grown.buffer);
    }
    this.arena.set(buf.subarray(start, end), this.arenaLength);
    const key = this.#keyCount++;
    if (key === this.keyStart.length) this.#growKeys();
    this.keyStart[key] = this.arenaLength;
    this.keyLength[key] = length;
    this.keyDepartment[key] = department;
    this.keyTail[key] = tailWord(buf, start, end);
    this.arenaLength += length;
    this.slotHash[slot] = hash;
    this.slotKey[slot] = key + 1;
    if (this.#keyCount * 2 > this.mask) this.#rehash();
    return department;
  }

  #resolve(raw: Uint8Array): number {
    let name: string;
    try {
      name = strictUtf8.decode(raw).trim();
    } catch {
      return INVALID_UTF8_DEPARTMENT;
    }
    if (name === "") return EMPTY_DEPARTMENT;
    return this.findName(name);
  }

  #create(name: string): number {
    const department = this.names.length;
    if (department >= this.#maxDepartments) {
      throw new AppError(
        Status.RESOURCE_EXHAUSTED,
        `Too many departments: the limit is ${this.#maxDepartments} distinct departments per upload`,
      );
    }
    this.names.push(name);
    this.#byName.set(name, department);
    if (department === this.low.length) {
      const grown = new Float64Array(this.low.length * 2);
      grown.set(this.low);
      this.low = grown;
    }
    if (!this.hasHighUnits && /[\uD800-\uFFFF]/.test(name)) this.hasHighUnits = true;
    return department;
  }

  #growKeys(): void {
    this.keyStart = doubled(this.keyStart);
    this.keyLength = doubled(this.keyLength);
    this.keyDepartment = doubled(this.keyDepartment);
    this.keyTail = doubled(this.keyTail);
  }

  #rehash(): void {
    const size = (this.mask + 1) * 2;
    const mask = size - 1;
    const slotHash = new Int32Array(size);
    const slotKey = new Int32Array(size);
    for (let old = 0; old <= this.mask; old++) {
      const key = this.slotKey[old];
      if (key === 0) continue;
      let slot = this.slotHash[old] & mask;
      while (slotKey[slot] !== 0) slot = (slot + 1) & mask;
      slotHash[slot] = this.slotHash[old];
      slotKey[slot] = key;
    }
    this.mask = mask;
    this.slotHash = slotHash;
    this.slotKey = slotKey;
  }
}

function doubled(array: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const grown = new Int32Array(array.length * 2);
  grown.set(array);
  return grown;
}

/** FNV-1a offset basis; the hot path hashes field bytes inline with the same constants. */
export const FNV_OFFSET = 0x811c9dc5 | 0;
/** FNV-1a prime. */
export const FNV_PRIME = 0x01000193;

/** The last `(end - start) % 4` bytes of `buf[start, end)`, packed little-endian. */
export function tailWord(buf: Uint8Array, start: number, end: number): number {
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
    const word = buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    hash = Math.imul(hash ^ word, FNV_PRIME);
  }
  return Math.imul(hash ^ tailWord(buf, start, end), FNV_PRIME);
}
