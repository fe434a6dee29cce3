/** A request body as an object (anything else reads as empty), for the actions that pick fields from it. */
export function obj(body: unknown): Record<string, unknown> {
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}
