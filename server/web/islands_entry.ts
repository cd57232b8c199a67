/**
 * The browser entry of the island bundle (`deno task build`): hydrates the server-rendered islands.
 *
 * @module
 */

import { hydrateIslands } from "./islands.ts";

hydrateIslands();
