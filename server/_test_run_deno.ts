/**
 * `deno <args>` run to its end in a child process, for tests of the command-line scripts: what
 * they print, decoded, and their exit code.
 *
 * @module
 */

/** What a finished `deno` child process gave. */
export interface DenoRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode runDeno}. */
export interface RunDenoOptions {
  /** The child's environment, added to this process's. @default {{}} */
  env?: Record<string, string>;
  /** The child's working folder. @default {this process's} */
  cwd?: string;
}

/** Runs `deno <args>` with stdout and stderr captured; resolves once it has exited. */
export async function runDeno(args: string[], options: RunDenoOptions = {}): Promise<DenoRun> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
