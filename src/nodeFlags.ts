// The V8 flags the operator runs with, wherever it is started (the image's ENTRYPOINT, `npm start`, the
// tests, the demo and the benchmark; a unit test keeps the Dockerfile and package.json in step).
//
// --max-semi-space-size=8: V8 grows the young generation up to 64 MB per semi-space while allocation is
// heavy (the start-up burst of thousands of writes) and keeps it. Capped, the operator holds far less
// resident memory for somewhat more scavenging CPU: `npm run bench -- scale` measures both (the figures of
// the runs that chose 8 are in bench/results/, e.g. 2026-11-26T19-11-24-full-node-options.json).
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
