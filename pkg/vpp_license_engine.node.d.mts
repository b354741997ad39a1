export * from './vpp_license_engine.cjs';
/** No-op in Node (the wasm is loaded synchronously on import); kept for code shared with browsers. */
export default function init(module_or_path?: unknown): Promise<void>;
/** No-op in Node; kept for code shared with browsers. */
export function initSync(module?: unknown): void;
