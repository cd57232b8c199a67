/**
 * The worker behind `_gunzip.ts`: inflates gzip streams with `node:zlib` on its own thread, one
 * inflater per stream id, for every upload of the process.
 *
 * Deno runs `node:zlib` on the calling thread, even its callback API (the async op was removed in
 * denoland/deno#24267), so inflating on the aggregating thread would add its time to the
 * parser's. Here it runs beside the parser instead.
 *
 * Bytes cross threads in the stream's two SharedArrayBuffers (input and output slots). Requests
 * are {@linkcode WorkerRequest}s; replies are `inflated` (an output slot filled), `consumed` (an
 * input slot is free again), `end` (with the input bytes zlib used) and `error`.
 *
 * zlib is driven through its handle (`writeSync`, as `zlib.inflateSync` does inside), not through
 * the stream: the stream allocates a new output buffer for every piece, which this isolate frees
 * only at its next garbage collection (about 100 MB of dead buffers on a gzip bomb), while the
 * handle inflates straight into the stream's output slots.
 *
 * @module
 */

import { constants, createGunzip } from "node:zlib";
import {
  GUNZIP_INPUT_SLOT_BYTES,
  GUNZIP_PIECE_BYTES,
  GUNZIP_PIECES_AHEAD,
  type WorkerRequest,
} from "./_gunzip.ts";

/** The part of a `node:zlib` handle used here. */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inputOffset: number,
    inputLength: number,
    output: Uint8Array,
    outputOffset: number,
    outputLength: number,
  ): void;
  close(): void;
  onerror: (message: string, errno: number) => void;
}

interface Stream {
  handle: ZlibHandle;
  /** After each write: output bytes left, input bytes left. */
  state: Uint32Array;
  error: { message: string; errno: number } | undefined;
  /** The stream's input slots, shared with the writer's thread. */
  input: Uint8Array;
  /** The stream's output slots, shared with the parser's thread. */
  output: Uint8Array;
  /** Output slots the parser has handed back; with none left, inflating waits. */
  free: number[];
  /** Input slots to inflate, in order, and how much of the first is left. */
  queue: { slot: number; offset: number; length: number }[];
  /** Input bytes zlib has used. */
  consumed: number;
  /** zlib stopped using input: bytes follow the last member (the writer's thread refuses them). */
  stopped: boolean;
  ending: boolean;
}

/** This worker's side of its channel to the thread that started it. */
const port = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
};
const streams = new Map<number, Stream>();

function open(
  id: number,
  input: SharedArrayBuffer,
  output: SharedArrayBuffer,
): void {
  // The stream object is only the way to an initialized gunzip handle; it is never written to.
  const gunzip = createGunzip() as unknown as {
    _handle: ZlibHandle;
    _writeState: Uint32Array;
  };
  const stream: Stream = {
    handle: gunzip._handle,
    state: gunzip._writeState,
    error: undefined,
    input: new Uint8Array(input),
    output: new Uint8Array(output),
    free: Array.from({ length: GUNZIP_PIECES_AHEAD }, (_, slot) => slot),
    queue: [],
    consumed: 0,
    stopped: false,
    ending: false,
  };
  stream.handle.onerror = (message, errno) => stream.error ??= { message, errno };
  streams.set(id, stream);
}

/**
 * Inflates one output slot's worth from `stream`'s input at `offset` (`length` bytes, maybe 0),
 * posts it, and returns the input bytes used; undefined once the stream failed.
 */
function inflate(
  id: number,
  stream: Stream,
  flush: number,
  offset: number,
  length: number,
): number | undefined {
  const slot = stream.free.pop()!;
  const { handle, state } = stream;
  handle.writeSync(
    flush,
    stream.input,
    offset,
    length,
    stream.output,
    slot * GUNZIP_PIECE_BYTES,
    GUNZIP_PIECE_BYTES,
  );
  if (stream.error) {
    close(id);
    const { message, errno } = stream.error;
    const code = errno === constants.Z_BUF_ERROR ? "Z_BUF_ERROR" : "Z_DATA_ERROR";
    port.postMessage({ id, type: "error", code, message });
    return undefined;
  }
  const produced = GUNZIP_PIECE_BYTES - state[0];
  if (produced > 0) {
    port.postMessage({ id, type: "inflated", slot, length: produced });
  } else stream.free.push(slot);
  const used = length - state[1];
  stream.consumed += used;
  return used;
}

/** Inflates queued input while output slots are free; then ends the stream if asked. */
function pump(id: number, stream: Stream): void {
  while (stream.queue.length > 0) {
    const item = stream.queue[0];
    while (item.length > 0 && !stream.stopped) {
      if (stream.free.length === 0) return;
      const used = inflate(
        id,
        stream,
        constants.Z_NO_FLUSH,
        item.offset,
        item.length,
      );
      if (used === undefined) return;
      item.offset += used;
      item.length -= used;
      // A full output slot may hide more output; otherwise input left over means zlib is done.
      if (stream.state[0] > 0 && item.length > 0) stream.stopped = true;
    }
    stream.queue.shift();
    port.postMessage({ id, type: "consumed", slot: item.slot });
  }
  if (!stream.ending) return;
  // Z_FINISH flushes the rest, and fails on a member that ends early (truncated data).
  while (!stream.stopped) {
    if (stream.free.length === 0) return;
    if (inflate(id, stream, constants.Z_FINISH, 0, 0) === undefined) return;
    if (stream.state[0] > 0) break;
  }
  close(id);
  port.postMessage({ id, type: "end", consumed: stream.consumed });
}

function close(id: number): void {
  const stream = streams.get(id);
  if (stream === undefined) return;
  streams.delete(id);
  stream.handle.close();
}

port.onmessage = (event) => {
  const message = event.data;
  const { id } = message;
  if (message.type === "open") return open(id, message.input!, message.output!);
  const stream = streams.get(id);
  if (stream === undefined) return;
  if (message.type === "data") {
    const slot = message.slot!;
    stream.queue.push({
      slot,
      offset: slot * GUNZIP_INPUT_SLOT_BYTES,
      length: message.length!,
    });
  } else if (message.type === "credit") {
    stream.free.push(message.slot!);
  } else if (message.type === "end") {
    stream.ending = true;
  } else if (message.type === "close") {
    return close(id);
  }
  pump(id, stream);
};
