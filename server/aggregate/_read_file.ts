/** Read-buffer size: large enough that per-read overhead vanishes, small enough for the caches. */
const READ_BUFFER_BYTES = 1 << 20;

/**
 * Reads a file through two reused buffers and hands each filled part to `take`, which must not
 * keep it: the next read runs (off the JavaScript thread) while `take` works on the previous one.
 */
export async function readFileChunks(
  path: string,
  take: (chunk: Uint8Array) => void,
): Promise<void> {
  using file = await Deno.open(path, { read: true });
  let current = new Uint8Array(READ_BUFFER_BYTES);
  let next = new Uint8Array(READ_BUFFER_BYTES);
  let length = await file.read(current);
  while (length !== null) {
    const reading = file.read(next);
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
