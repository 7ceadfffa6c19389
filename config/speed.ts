/** Tumbling window sizes of the speed layer (SPEC §7), in minutes. */
export const WINDOW_SIZES = { '5m': 5, '15m': 15, '1h': 60 } as const;
export type WindowSize = keyof typeof WINDOW_SIZES;
