import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// In a checkout these are beside their sources; in the controller's image (one bundled main.js, no node_modules)
// scripts/build-controller-image.sh copies them beside the bundle, which is where import.meta.url then points.

/** The console's built page (scripts/build-console.sh writes it). */
export function consoleAssetsDir(): string {
  return fileURLToPath(new URL('./console/dist/', import.meta.url));
}

/** The reference page's assets, from the swagger-ui package (no CDN). */
export function swaggerUiAssetsDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui/package.json')), 'static');
  } catch {
    return fileURLToPath(new URL('./swagger-ui/', import.meta.url));
  }
}

/** The reference page's logo, read once (the plugin would read it relative to its own, bundled, location). */
export function swaggerUiLogo(): { type: string; content: Buffer } {
  return { type: 'image/svg+xml', content: readFileSync(join(swaggerUiAssetsDir(), 'logo.svg')) };
}
