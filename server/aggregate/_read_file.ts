/** Read-buffer size: large enough that per-read overhead vanishes, small enough for the caches. */
const READ_BUFFER_BYTES = 1 << 20;

/**
 * Reads a file through two reused buffers and hands each filled part to `take`, which must not
 * keep it: the next read runs (off the JavaScript thread) while `take` works on the previous one.
 * A promise `take` returns is awaited before the next part (backpressure).
 */
export async function readFileChunks(
  path: string,
  take: (chunk: Uint8Array) => void | Promise<void>,
): Promise<void> {
  using file = await Deno.open(path, { read: true });
  let current = new Uint8Array(READ_BUFFER_BYTES);
  let next = new Uint8Array(READ_BUFFER_BYTES);
  let length = await file.read(current);
  while (length !== null) {
    const reading = file.read(next);
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

/**
 * Reads bytes `[start, end)` of an open file as {@linkcode readFileChunks} reads a whole file:
 * through two reused buffers, the next read running while `take` works on the previous part.
 */
export async function readFileRange(
  file: Deno.FsFile,
  start: number,
  end: number,
  take: (chunk: Uint8Array) => void,
): Promise<void> {
  await file.seek(start, Deno.SeekMode.Start);
  let current = new Uint8Array(READ_BUFFER_BYTES);
  let next = new Uint8Array(READ_BUFFER_BYTES);
  let position = start;
  const readAt = async (buffer: Uint8Array): Promise<number> => {
    const wanted = Math.min(buffer.length, end - position);
    if (wanted <= 0) return 0;
    const length = await file.read(buffer.subarray(0, wanted)) ?? 0;
    position += length;
    return length;
  };
  let length = await readAt(current);
  while (length > 0) {
    const reading = readAt(next);
    try {
      take(current.subarray(0, length));
    } catch (error) {
      await reading.catch(() => {});
      throw error;
    }
    length = await reading;
    [current, next] = [next, current];
  }
}
