import { useEffect, useRef, useState } from "preact/hooks";
import { normalizeToken } from "../browser/access_token.ts";

/** Props of {@linkcode TokenPrompt}. */
export interface TokenPromptProps {
  /** True when a token was sent and the server refused it; false when none was sent. */
  rejected: boolean;
  /** Called with a well-formed token; the island stores it and retries the upload. */
  onSubmit: (token: string) => void;
  /** Called when the person gives up; the upload is not retried. Without it, no Cancel button. */
  onCancel?: () => void;
  /** What the token is for: sets the help text and the button. @default {"upload"} */
  purpose?: "upload" | "view";
}

/**
 * Asks for the server's access token after an upload was refused with UNAUTHENTICATED. The field
 * takes focus, its label and help are tied to it, and a problem is shown as an error the field
 * points to (`aria-invalid`, `aria-describedby`), so it works by keyboard and screen reader.
 */
export default function TokenPrompt(
  { rejected, onSubmit, onCancel, purpose = "upload" }: TokenPromptProps,
) {
  const field = useRef<HTMLInputElement>(null);
  const [problem, setProblem] = useState<string | undefined>(
    rejected
      ? "The server did not accept this access token. Check it and enter it again."
      : undefined,
  );

  useEffect(() => {
    field.current?.focus();
  }, []);

  function submit(event: Event) {
    event.preventDefault();
    const typed = normalizeToken(field.current?.value ?? "");
    if ("problem" in typed) {
      setProblem(typed.problem);
      field.current?.focus();
      return;
    }
    onSubmit(typed.token);
  }

  return (
    <form
      class="notice token-prompt"
      aria-labelledby="token-heading"
      data-testid="token-prompt"
      noValidate
      onSubmit={submit}
    >
      <h3 id="token-heading">This server requires an access token</h3>
      <p id="token-help">
        Enter the token the server's administrator gave you to{" "}
        {purpose === "upload" ? "upload" : "see this result"}. It is kept in this browser tab only,
        until you close it.
      </p>
      <label for="access-token">Access token</label>{" "}
      <input
        ref={field}
        id="access-token"
        class="token-input"
        name="access-token"
        type="password"
        autocomplete="off"
        spellcheck={false}
        aria-invalid={problem !== undefined ? "true" : undefined}
        aria-describedby={problem !== undefined ? "token-error token-help" : "token-help"}
        onInput={() => setProblem(undefined)}
      />
      {problem !== undefined && (
        <p id="token-error" class="alert token-error" role="alert" data-testid="token-error">
          {problem}
        </p>
      )}
      <div class="actions">
        <button type="submit" class="button primary">
          {purpose === "upload" ? "Continue upload" : "Show result"}
        </button>
        {onCancel !== undefined && (
          <button type="button" class="button" onClick={onCancel}>Cancel</button>
        )}
      </div>
    </form>
  );
}
