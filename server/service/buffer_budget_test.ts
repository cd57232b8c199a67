import assert from "node:assert/strict";
import { AppError, Status } from "../errors.ts";
import { BufferBudget, type Reservation } from "./buffer_budget.ts";

/** Settles pending promise callbacks (grants run synchronously inside release). */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

function isExhausted(error: unknown): boolean {
  return error instanceof AppError && error.code === Status.RESOURCE_EXHAUSTED &&
    /MAX_BUFFERED_BYTES/.test(error.message) && error.retryAfterMs === 2000;
}

Deno.test("BufferBudget reserve grants what fits at once and counts it", async () => {
  const budget = new BufferBudget({ maxBytes: 100 });
  const a = await budget.reserve(60);
  const b = await budget.reserve(40);
  assert.equal(budget.reserved, 100);
  assert.equal(a.bytes, 60);
  a.release();
  b.release();
  assert.equal(budget.reserved, 0);
});

Deno.test("BufferBudget reserve refuses a message larger than the whole budget at once", async () => {
  const budget = new BufferBudget({ maxBytes: 100, waitMs: 60_000 });
  const started = performance.now();
  await assert.rejects(budget.reserve(101), isExhausted);
  assert.ok(performance.now() - started < 1000, "refused without waiting");
  assert.equal(budget.waiting, 0);
});

Deno.test("BufferBudget reserve waits for room and grants waiters first come first served", async () => {
  const budget = new BufferBudget({ maxBytes: 100, waitMs: 60_000 });
  const held = await budget.reserve(90);
  const order: string[] = [];
  const big = budget.reserve(80).then((r) => (order.push("big"), r));
  // Fits on its own, but must not overtake the waiter ahead of it.
  const small = budget.reserve(10).then((r) => (order.push("small"), r));
  assert.equal(budget.tryReserve(5), undefined, "tryReserve does not jump the queue");
  await settled();
  assert.deepEqual(order, []);
  assert.equal(budget.waiting, 2);
  held.release();
  const [bigGrant, smallGrant] = await Promise.all([big, small]);
  assert.deepEqual(order, ["big", "small"]);
  assert.equal(budget.reserved, 90);
  assert.equal(budget.waiting, 0);
  bigGrant.release();
  smallGrant.release();
  assert.equal(budget.reserved, 0);
});

Deno.test("BufferBudget reserve refuses with a retry hint after waiting waitMs", async () => {
  const budget = new BufferBudget({ maxBytes: 100, waitMs: 50 });
  const held = await budget.reserve(100);
  const started = performance.now();
  const error = await budget.reserve(1).then(() => assert.fail("granted"), (error) => error);
  const waited = performance.now() - started;
  assert.ok(isExhausted(error), String(error));
  assert.match(
    (error as AppError).message,
    /^Server busy: a 1-byte message does not fit in MAX_BUFFERED_BYTES \(100 bytes/,
  );
  assert.ok(waited >= 45 && waited < 5000, `waited ${waited} ms`);
  assert.equal(budget.waiting, 0);
  held.release();
  (await budget.reserve(100)).release();
});

Deno.test("BufferBudget reserve uses the configured retry hint", async () => {
  const budget = new BufferBudget({ maxBytes: 10, waitMs: 1, retryAfterMs: 750 });
  const error = await budget.reserve(11).catch((error) => error);
  assert.equal((error as AppError).retryAfterMs, 750);
});

Deno.test("BufferBudget reserve gives up when its signal aborts, and lets smaller waiters in", async () => {
  const budget = new BufferBudget({ maxBytes: 100, waitMs: 60_000 });
  const held = await budget.reserve(50);
  const controller = new AbortController();
  const blocked = budget.reserve(80, controller.signal);
  const behind = budget.reserve(40);
  await settled();
  assert.equal(budget.waiting, 2);
  const reason = new Error("client went away");
  controller.abort(reason);
  await assert.rejects(blocked, (error) => error === reason);
  // The head of the queue left: the waiter behind it fits now.
  const granted = await behind;
  assert.equal(budget.reserved, 90);
  granted.release();
  held.release();
  assert.equal(budget.reserved, 0);
});

Deno.test("BufferBudget reserve rejects at once with an already aborted signal", async () => {
  const budget = new BufferBudget({ maxBytes: 10, waitMs: 60_000 });
  const held = await budget.reserve(10);
  const controller = new AbortController();
  controller.abort(new Error("gone"));
  await assert.rejects(budget.reserve(5, controller.signal), /gone/);
  assert.equal(budget.waiting, 0);
  held.release();
});

Deno.test("BufferBudget Reservation release is idempotent", async () => {
  const budget = new BufferBudget({ maxBytes: 100, waitMs: 60_000 });
  const first = await budget.reserve(60);
  const second = await budget.reserve(40);
  first.release();
  first.release();
  assert.equal(budget.reserved, 40, "a second release does not free someone else's bytes");
  const third: Reservation = budget.tryReserve(60)!;
  assert.equal(budget.tryReserve(1), undefined);
  second.release();
  third.release();
  third.release();
  assert.equal(budget.reserved, 0);
});

Deno.test("BufferBudget reserve refuses at once when maxWaiters calls already wait", async () => {
  const budget = new BufferBudget({ maxBytes: 10, waitMs: 5_000, maxWaiters: 2 });
  const holder = await budget.reserve(10);
  const waiters = [budget.reserve(5), budget.reserve(5)];
  const started = performance.now();
  const refused = await budget.reserve(1).catch((error) => error);
  assert.ok(refused instanceof AppError && refused.code === Status.RESOURCE_EXHAUSTED);
  assert.ok(performance.now() - started < 1000, "refused without waiting");
  assert.equal(budget.waiting, 2);
  holder.release();
  for (const reservation of await Promise.all(waiters)) reservation.release();
  assert.equal(budget.reserved, 0);
});
