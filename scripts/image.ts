// `npm run image [-- --no-cache]`: builds the Dockerfile, unchanged, into localhost/pgcluster-operator:<version>
// (podman or buildah). Where the FROM images cannot be pulled, local stand-ins are built first and the output
// says so. See test/harness/image.ts.
import { buildImage } from '../test/harness/image.ts';

try {
  const r = await buildImage({ noCache: process.argv.includes('--no-cache') });
  console.log(r.ref);
  if (r.standIns.length) console.error(`[image] NOTE: built on local stand-ins for ${r.standIns.join(', ')}, not the official base images`);
} catch (e) {
  console.error(`[image] FAILED: ${(e as Error).message}`);
  process.exitCode = 1;
}
