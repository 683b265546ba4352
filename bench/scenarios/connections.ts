export const CONNECTIONS_FULL = {};
export const CONNECTIONS_QUICK = {};
export async function runConnections(_db: unknown, _c: unknown) { return { rows: [], notes: [] }; }
