// Placeholder: compiles assembly/*.ts with AssemblyScript into dist/wasm/.
console.log('build-wasm: no wasm modules yet');
