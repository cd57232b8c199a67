/** Read-buffer size: large enough that per-read overhead vanishes, small enough for the caches. */
export const READ_BUFFER_BYTES = 1 << 20;

/**
 * The one read loop of the aggregator: fills two reused buffers in turn with `read` (which returns
 * the bytes it put in the buffer, 0 at the end) and hands each filled part to `take`, which must
 * not keep it. The next read runs (off the JavaScript thread) while `take` works on the previous
 * part; a promise `take` returns is awaited before the next part (backpressure).
 */
export async function readDoubleBuffered(
  read: (buffer: Uint8Array) => Promise<number>,
  take: (chunk: Uint8Array) => void | Promise<void>,
): Promise<void> {
  let current = new Uint8Array(READ_BUFFER_BYTES);
  let next = new Uint8Array(READ_BUFFER_BYTES);
  let length = await read(current);
  while (length > 0) {
    const reading = read(next);
    try {
      await take(current.subarray(0, length));
    } catch (error) {
      await reading.catch(() => {});
      throw error;
    }
    length = await reading;
    [current, next] = [next, current];
  }
}

/** Reads a whole file through {@linkcode readDoubleBuffered}. */
export async function readFileChunks(
  path: string,
  take: (chunk: Uint8Array) => void | Promise<void>,
): Promise<void> {
  using file = await Deno.open(path, { read: true });
  await readDoubleBuffered(async (buffer) => await file.read(buffer) ?? 0, take);
}

/** Reads bytes `[start, end)` of an open file through {@linkcode readDoubleBuffered}. */
export async function readFileRange(
  file: Deno.FsFile,
  start: number,
  end: number,
  take: (chunk: Uint8Array) => void,
): Promise<void> {
  await file.seek(start, Deno.SeekMode.Start);
  let position = start;
  await readDoubleBuffered(async (buffer) => {
    const wanted = Math.min(buffer.length, end - position);
    if (wanted <= 0) return 0;
    const length = await file.read(buffer.subarray(0, wanted)) ?? 0;
    position += length;
    return length;
  }, take);
}
