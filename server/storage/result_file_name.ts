/**
 * The name a result is saved under: `<original name>.result.csv` (`sales.csv` → `sales.result.csv`,
 * `x.csv.gz` → `x.result.csv`; several files, `jan.csv` then two more →
 * `jan-and-2-more.result.csv`), made safe to be a file name on any system and to travel in a
 * `Content-Disposition` header. The result server, `GetResult` and `deno task download` all name
 * results with it.
 *
 * @example
 * ```ts
 * import { contentDisposition, resultFileName } from "./result_file_name.ts";
 * const resultId = "0123456789abcdef0123456789abcdef";
 * if (resultFileName("sales.csv.gz", resultId) !== "sales.result.csv") throw new Error("name");
 * if (resultFileName("", resultId) !== `${resultId}.csv`) throw new Error("fallback");
 * const several = resultFileName(["jan.csv", "feb.csv.gz", "mar.csv"], resultId);
 * if (several !== "jan-and-2-more.result.csv") throw new Error(several);
 * const header = contentDisposition("ventes été.csv", resultId);
 * if (!header.includes("filename*=UTF-8''ventes%20%C3%A9t%C3%A9.result.csv")) throw new Error(header);
 * ```
 *
 * @module
 */

/** Characters of the original name's stem kept: names stay well under every file system's limit. */
const MAX_STEM_CHARS = 120;

/**
 * The download name of a result uploaded as `original`: its last path segment, without a final
 * `.gz` and then `.csv` (any case), control characters dropped, characters that file systems or
 * headers refuse (`"` `*` `/` `:` `<` `>` `?` `\` `|`) replaced by `_`, cut to 120 characters,
 * plus `.result.csv`. An empty or dot-only name gives `<result id>.csv`, as before names were kept.
 * Several files (a list of more than one name) give `<first stem>-and-<n>-more.result.csv`, `n`
 * being the number of the other files.
 */
export function resultFileName(original: string | readonly string[], resultId: string): string {
  const names = typeof original === "string" ? [original] : original;
  const stem = stemOf(names[0] ?? "");
  if (stem === "") return `${resultId}.csv`;
  if (names.length > 1) return `${stem}-and-${names.length - 1}-more.result.csv`;
  return `${stem}.result.csv`;
}

/** A file name's safe stem (see {@linkcode resultFileName}); `""` when nothing is left. */
function stemOf(original: string): string {
  // Both separators: a name from a Windows browser may keep its folders.
  let stem = original.split(/[/\\]/).pop() ?? "";
  stem = stem.replace(/\.gz$/i, "").replace(/\.csv$/i, "");
  stem = stem
    // deno-lint-ignore no-control-regex
    .replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "")
    .replace(/["*:<>?|]/g, "_")
    .trim();
  stem = Array.from(stem).slice(0, MAX_STEM_CHARS).join("").trim();
  // A leading dot would hide the file on Unix, and "." or ".." name folders.
  return stem.replace(/^\.+/, "");
}

/**
 * `Content-Disposition: attachment` for a result (RFC 6266): `filename="..."` with an ASCII
 * fallback (other characters as `_`), and for a name that is not plain ASCII also
 * `filename*=UTF-8''...` (RFC 8187), which clients that know it prefer.
 */
export function contentDisposition(
  original: string | readonly string[],
  resultId: string,
): string {
  const name = resultFileName(original, resultId);
  const ascii = name.replace(/[^\x20-\x7e]/g, "_").replace(/[\\"%]/g, "_");
  if (ascii === name) return `attachment; filename="${name}"`;
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeRfc8187(name)}`;
}

/** RFC 8187 `value-chars`: UTF-8 bytes percent-encoded, except the `attr-char` set. */
function encodeRfc8187(text: string): string {
  return encodeURIComponent(text).replace(
    /['()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * The file name a `Content-Disposition` header gives (`filename*` first, then `filename`), or
 * undefined. Only its last path segment is returned: a server must not choose the folder.
 */
export function fileNameFromDisposition(header: string | null): string | undefined {
  if (header === null) return undefined;
  let name: string | undefined;
  const extended = /(?:^|;)\s*filename\*\s*=\s*UTF-8'[^']*'([^;\s]+)/i.exec(header);
  if (extended !== null) {
    try {
      name = decodeURIComponent(extended[1]);
    } catch {
      name = undefined;
    }
  }
  if (name === undefined) {
    const plain = /(?:^|;)\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(header);
    if (plain !== null) name = plain[1]?.replace(/\\(.)/g, "$1") ?? plain[2];
  }
  // deno-lint-ignore no-control-regex
  name = name?.split(/[/\\]/).pop()?.replace(/[\x00-\x1f\x7f]/g, "").trim();
  return name === undefined || name === "" || /^\.+$/.test(name) ? undefined : name;
}
