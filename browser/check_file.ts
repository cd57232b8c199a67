import { csvRefusal, SNIFF_BYTES } from "../server/aggregate/looks_like_csv.ts";
import { formatBytes } from "./format.ts";

/** File name endings the service reads (gzip is recognized by its magic bytes). */
const CSV_NAME = /\.(csv|txt|tsv)(\.gz)?$|\.gz$/i;
/** A name with an extension: then it must be one of the above, unless the type says text. */
const HAS_EXTENSION = /\.[A-Za-z0-9]{1,8}$/;

/**
 * A readable reason why `file` cannot be uploaded from the page, or undefined when it looks
 * fine: a name or type that is not CSV, a size over the server's limit, or what
 * {@linkcode csvRefusal} refuses (empty, binary), the check `deno task upload` and
 * `deno task aggregate` make too.
 */
export async function checkFile(
  file: File,
  maxUploadBytes: number | null,
): Promise<string | undefined> {
  const textType = /^text\/(csv|plain)$/.test(file.type);
  const wrongName = HAS_EXTENSION.test(file.name) && !CSV_NAME.test(file.name) && !textType;
  if (wrongName || /^(image|audio|video)\//.test(file.type)) {
    return `“${file.name}” is not a CSV file. Choose a .csv file (export spreadsheets as CSV first).`;
  }
  if (maxUploadBytes !== null && file.size > maxUploadBytes) {
    return `“${file.name}” is ${formatBytes(file.size)}; this server accepts files up to ${
      formatBytes(maxUploadBytes)
    }.`;
  }
  const head = new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer());
  return csvRefusal(file.name, file.size, head);
}
