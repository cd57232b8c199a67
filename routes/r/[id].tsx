import SiteHeader from "../../components/SiteHeader.tsx";
import ResultIsland from "../../islands/ResultIsland.tsx";
import { type ResultData, resultTitle, storedResultData } from "../../browser/result_data.ts";
import { AppError, Status } from "../../server/errors.ts";
import { HttpError, page, type PageProps, type RouteHandlers } from "../../server/web/fs_routes.ts";
import type { CallContext } from "../../server/service/types.ts";
import { isResultId } from "../../server/storage/result_id.ts";
import type { State } from "../../server/web/web_app.ts";

/** What {@linkcode ResultPage} shows. */
export type ResultPageData =
  /** The stored result, rendered by the server. */
  | { kind: "result"; result: ResultData; grpcWebUrl: string }
  /** The server requires a token: the island asks for it and loads the result itself. */
  | { kind: "locked"; resultId: string; grpcWebUrl: string }
  /** The address's signature is wrong or has expired: nothing else is shown. */
  | { kind: "refused"; expired: boolean; reason: string };

/**
 * The page's own calls to the service: no client metadata, and never a token. Not tied to the
 * request's signal: reading one stored result is short, and Deno aborts that signal on success.
 */
function pageCall(): CallContext {
  return { signal: new AbortController().signal, header: () => undefined, transport: "web-page" };
}

/** Whether the service says the result is not there (deleted by the sweep, or never stored). */
function isMissing(error: unknown): boolean {
  return error instanceof AppError &&
    (error.code === Status.NOT_FOUND || error.code === Status.INVALID_ARGUMENT);
}

/**
 * `/r/<result id>`: checks the address's signature when addresses are signed (403, or 410 once
 * expired), then renders the stored result from its description (the largest departments its
 * metadata keeps; see {@linkcode storedResultData}); a missing result is a 404. When the server requires
 * an access token, the server renders no result at all, only the island that asks for it.
 */
export const handler: RouteHandlers<ResultPageData, State> = {
  async GET(ctx) {
    const resultId = ctx.params.id;
    if (!isResultId(resultId)) {
      throw new HttpError(404, `No result at ${ctx.url.pathname}: not a result id`);
    }
    const { state } = ctx;
    const refusal = state.pageLinks.verifyPage(resultId, ctx.url.searchParams);
    if (refusal !== undefined) {
      // The verifier says "expired" only of an address this server signed.
      const expired = refusal.kind === "expired";
      state.title = expired ? "This link has expired" : "This link is not valid";
      return page({ kind: "refused", expired, reason: refusal.message }, {
        status: expired ? 410 : 403,
      });
    }
    const { grpcWebUrl } = state;
    if (state.tokenRequired) {
      state.title = "Result: Sales Aggregator";
      return page({ kind: "locked", resultId, grpcWebUrl });
    }
    try {
      const call = pageCall();
      const described = await state.service.getResult({ resultId }, call);
      // The metadata keeps the largest departments: the CSV is read only for an older result,
      // and only when it is small enough.
      const result = await storedResultData(
        {
          ...described,
          createdAt: described.createdAt.toISOString(),
          // This page's own address, with the query that opened it (its signature, if any).
          pagePath: `${ctx.url.pathname}${ctx.url.search}`,
        },
        async () => (await state.service.downloadResult({ resultId }, call)).data,
      );
      state.title = `Results for ${resultTitle(result.files)}: Sales Aggregator`;
      return page({ kind: "result", result, grpcWebUrl });
    } catch (error) {
      // A service behind a token the configuration did not tell of: the browser asks for it.
      if (error instanceof AppError && error.code === Status.UNAUTHENTICATED) {
        state.title = "Result: Sales Aggregator";
        return page({ kind: "locked", resultId, grpcWebUrl });
      }
      if (isMissing(error)) {
        throw new HttpError(404, `No result ${resultId}: it was deleted or never stored`, {
          cause: error,
        });
      }
      throw error;
    }
  },
};

/** A result's own page: shareable, and the same after a reload. */
export default function ResultPage({ data }: PageProps<ResultPageData, State>) {
  if (data.kind === "refused") {
    return (
      <main id="main" class="page narrow">
        <h1>{data.expired ? "This link has expired" : "This link is not valid"}</h1>
        <p data-testid="link-refused">
          {data.expired
            ? "Links to results are valid for a limited time, and this one's time is over."
            : "This link to a result was changed or is incomplete, so it does not open anything."}
          {" "}
          Ask whoever shared it for a new link.
        </p>
        <p class="muted">{data.reason}.</p>
      </main>
    );
  }
  const resultId = data.kind === "result" ? data.result.resultId : data.resultId;
  return (
    <>
      <SiteHeader />
      <main id="main" class="page">
        <div class="intro">
          <h1>Saved result</h1>
          <p class="lead">
            Total sales per department, kept on the server under this address.{" "}
            <a href="/">Upload another file</a>.
          </p>
        </div>
        <ResultIsland
          result={data.kind === "result" ? data.result : undefined}
          resultId={resultId}
          grpcWebUrl={data.grpcWebUrl}
        />
      </main>
    </>
  );
}
