/**
 * Vite config of the dashboard. The node builds it programmatically (src/node/dashboard.ts);
 * `npx vite web` serves it for development, proxying the API to a running node
 * (CARCHAIN_URL, default http://127.0.0.1:8080). Sign-in messages name the page's origin, so
 * start that node with `--public-url http://localhost:5173` (docs/operations.md).
 */
import { fileURLToPath } from 'node:url'
import type { UserConfig } from 'vite'

const webRoot = fileURLToPath(new URL('.', import.meta.url))
const nodeUrl = process.env.CARCHAIN_URL ?? 'http://127.0.0.1:8080'

/** The config, with the output directory chosen by the caller (the node builds to a temp dir). */
export function dashboardViteConfig(outDir = 'dist'): UserConfig {
  return {
    root: webRoot,
    base: '/',
    logLevel: 'warn',
    clearScreen: false,
    // React's automatic JSX runtime through Vite's own transform: no plugin needed.
    oxc: { jsx: { runtime: 'automatic' } },
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      chunkSizeWarningLimit: 1500,
      reportCompressedSize: false,
    },
    server: {
      fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] },
      proxy: { '/v1': nodeUrl, '/log': nodeUrl, '/openapi.json': nodeUrl },
    },
  }
}

export default dashboardViteConfig()
