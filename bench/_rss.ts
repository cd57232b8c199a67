/**
 * Resident set size of the current process, read from Linux's `/proc/self/status`.
 * Deno lets a process read its own `/proc/self` only with `--allow-all`.
 *
 * @module
 */

/** Bytes of a `/proc/self/status` field given in kB (`VmHWM`, `VmRSS`), or null if unavailable. */
function statusField(name: "VmHWM" | "VmRSS"): number | null {
  let status: string;
  try {
    status = Deno.readTextFileSync("/proc/self/status");
  } catch (error) {
    // Not Linux. A permission error is rethrown: a silent null would hide a wrong invocation.
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status);
  return match ? Number(match[1]) * 1024 : null;
}

/** Peak resident set size of this process so far (`VmHWM`), in bytes; null off Linux. */
export function peakRssBytes(): number | null {
  return statusField("VmHWM");
}

/** Current resident set size of this process (`VmRSS`), in bytes; null off Linux. */
export function currentRssBytes(): number | null {
  return statusField("VmRSS");
}
