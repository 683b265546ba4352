export const FANOUT_FULL = {};
export const FANOUT_QUICK = {};
export async function runFanout(_db: unknown, _c: unknown) { return { rows: [], notes: [] }; }
