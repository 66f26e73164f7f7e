// The V8 flags the operator runs with, wherever it is started (the image's ENTRYPOINT, `npm start`, the
// tests, the demo and the benchmark; a unit test keeps the Dockerfile and package.json in step).
//
// --max-semi-space-size=16: V8 grows the young generation up to 64 MB per semi-space while allocation is
// heavy (the start-up burst of thousands of writes) and keeps it. Capped at 16 MB, the operator at 10,000
// pods holds ~110 MB less resident memory for about the same CPU (`npm run bench -- scale`).
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
