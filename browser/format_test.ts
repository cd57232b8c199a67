import assert from "node:assert/strict";
import { formatDistinctLabels, formatDuration, formatPlural } from "./format.ts";
import { seededRandom } from "../server/_test_mulberry32.ts";

Deno.test("formatPlural agrees the noun with the count", async (t) => {
  const cases: [number | bigint, string, string | undefined, string][] = [
    [1, "department", undefined, "1 department"],
    [0, "department", undefined, "0 departments"],
    [2, "good row", undefined, "2 good rows"],
    [1n, "bad row", undefined, "1 bad row"],
    [1234567, "row", undefined, "1,234,567 rows"],
    [1, "entry", "entries", "1 entry"],
    [3, "entry", "entries", "3 entries"],
  ];
  for (const [count, singular, plural, expected] of cases) {
    await t.step(expected, () => {
      assert.equal(formatPlural(count, singular, plural, "en-US"), expected);
    });
  }
  // The number follows the locale; the English noun follows English rules.
  assert.equal(formatPlural(1000, "row", undefined, "de-DE"), "1.000 rows");
});

Deno.test("formatDistinctLabels gives different totals different labels", async (t) => {
  await t.step("ten totals that all read 1.2B in one decimal", () => {
    const totals = Array.from({ length: 10 }, (_, i) => 1_200_000_000n + BigInt(i) * 3_700_000n);
    const labels = formatDistinctLabels(totals, "en-US");
    assert.deepEqual(labels, [
      "1.2B",
      "1.204B",
      "1.207B",
      "1.211B",
      "1.215B",
      "1.219B",
      "1.222B",
      "1.226B",
      "1.23B",
      "1.233B",
    ]);
  });

  await t.step("as few digits as it takes", () => {
    assert.deepEqual(formatDistinctLabels([3_400_000n, 1_200_000n, 950n, 7n], "en-US"), [
      "3.4M",
      "1.2M",
      "950",
      "7",
    ]);
    assert.deepEqual(formatDistinctLabels([1_234_567n, 1_234_612n * 10n], "en-US"), [
      "1.2M",
      "12M",
    ]);
    assert.deepEqual(formatDistinctLabels([1_234_567n, 1_234_700n], "en-US"), [
      "1.2346M",
      "1.2347M",
    ]);
  });

  await t.step("the whole part is never rounded away", () => {
    assert.deepEqual(formatDistinctLabels([123n, 987n, 12n], "en-US"), ["123", "987", "12"]);
    assert.deepEqual(formatDistinctLabels([123_456_789n, 98_765n], "en-US"), ["123M", "99K"]);
  });

  await t.step("exact figures with grouping when five digits are not enough", () => {
    assert.deepEqual(
      formatDistinctLabels([1_234_567_891n, 1_234_567_890n, 1_234_567_890n], "en-US"),
      ["1,234,567,891", "1,234,567,890", "1,234,567,890"],
    );
    // Past 2^53 too: totals are bigint.
    const huge = 2n ** 60n;
    assert.deepEqual(formatDistinctLabels([huge + 1n, huge], "en-US"), [
      "1,152,921,504,606,846,977",
      "1,152,921,504,606,846,976",
    ]);
  });

  await t.step("equal totals share a label; any set gets distinct labels", () => {
    assert.deepEqual(formatDistinctLabels([5n, 5n], "en-US"), ["5", "5"]);
    const random = seededRandom(7);
    for (let round = 0; round < 200; round++) {
      const base = BigInt(Math.floor(random() * 1e12));
      const totals = Array.from(
        { length: 10 },
        () => base + BigInt(Math.floor(random() ** 4 * 1e9)),
      );
      const labels = formatDistinctLabels(totals, "en-US");
      const byLabel = new Map<string, bigint>();
      totals.forEach((total, i) => {
        const seen = byLabel.get(labels[i]);
        assert.ok(seen === undefined || seen === total, `${labels[i]}: ${seen} and ${total}`);
        byLabel.set(labels[i], total);
      });
    }
  });
});

Deno.test("formatDuration keeps two decimals under a second", () => {
  assert.equal(formatDuration(0.07, "en-US"), "0.07 s");
  assert.equal(formatDuration(75, "en-US"), "1 min 15 s");
});
