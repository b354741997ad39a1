// Node ESM entry: re-exports the CommonJS build so that `import` and `require` share ONE wasm instance.
// init()/initSync() exist so that isomorphic code (`await init()`) runs unchanged; Node loads the wasm synchronously.
export * from './vpp_license_engine.cjs';
export default async function init(_moduleOrPath) {}
export function initSync(_module) {}
