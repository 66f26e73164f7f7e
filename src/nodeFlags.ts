// The V8 flags the operator runs with, wherever it is started (the image's ENTRYPOINT, `npm start`, the
// tests, the demo and the benchmark; a unit test keeps the Dockerfile and package.json in step).
//
// --max-semi-space-size=8: V8 grows the young generation up to 64 MB per semi-space while allocation is
// heavy (the start-up burst of thousands of writes) and keeps it. Capped, the operator holds far less
// resident memory (`npm run bench -- scale`: 533 MB uncapped, 421 MB at 16 MB, ~395 MB at 8 MB with 10,000
// pods; 1,000 pods: ~220 MB at 16 MB, ~200 MB at 8 MB) for somewhat more scavenging CPU (10,000 pods: 3.8-4.5 %
// of a core at 16 MB, 4.8 % at 8 MB).
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
