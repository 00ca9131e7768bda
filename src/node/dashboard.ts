/**
 * The dashboard at `/`: the Vite + React app in `web/`, built on start when its build is missing
 * or older than its sources, then served as static files with an SPA fallback to index.html.
 *
 * The build goes to a private temp directory and is swapped into `web/dist` by rename, so several
 * nodes starting at once (tests) never serve a half-written build. Vite is a devDependency: where
 * it is not installed and no build exists, `/` explains how to get one instead of failing the node.
 */
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { extname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { BaseError } from '../errors.ts'
import type { NodeRoutes } from './server.ts'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

/** Where the dashboard's sources and build live. */
export const webRoot: string = join(repoRoot, 'web')
export const distDir: string = join(webRoot, 'dist')

/**
 * What the bundle is made of: web/ (less its build) and the shared src/ modules it imports
 * (generated ABIs, JCS, key typed data, errors). A change to any of them makes the build stale.
 */
const sourcePaths = [
  webRoot,
  join(repoRoot, 'src/chain/generated'),
  join(repoRoot, 'src/ledger/jcs.ts'),
  join(repoRoot, 'src/keys/typed-data.ts'),
  join(repoRoot, 'src/keys/share-link.ts'),
  join(repoRoot, 'src/errors.ts'),
]

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
}

function newestMtimeMs(path: string): number {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = stat.mtimeMs
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    // The build itself, builds in progress (.dist-build-*) and swapped-out ones (dist.old-*).
    if (entry.name.startsWith('dist') || entry.name.startsWith('.') || entry.name === 'node_modules') continue
    newest = Math.max(newest, newestMtimeMs(join(path, entry.name)))
  }
  return newest
}

/** Why the build must be (re)made, or undefined when `web/dist` is current. */
export function dashboardBuildReason(): string | undefined {
  const index = join(distDir, 'index.html')
  if (!existsSync(index)) return 'no build yet'
  const builtMs = statSync(index).mtimeMs
  const sourcesMs = Math.max(...sourcePaths.map(newestMtimeMs))
  return sourcesMs > builtMs ? 'sources changed since the last build' : undefined
}

let building: Promise<void> | undefined

/**
 * Builds `web/` into `web/dist` with Vite when stale (once per process). Resolves when a build
 * is ready; rejects with DASHBOARD_UNAVAILABLE-style BaseError when Vite cannot be loaded.
 */
export function ensureDashboardBuilt(progress: (message: string) => void = () => {}): Promise<void> {
  const reason = dashboardBuildReason()
  if (!reason) return Promise.resolve()
  building ??= (async () => {
    const started = Date.now()
    progress(`building the dashboard (${reason})`)
    let vite: typeof import('vite')
    try {
      vite = await import('vite')
    } catch (error) {
      throw new BaseError(
        'INTERNAL',
        'the dashboard needs a build, and Vite (a devDependency) is not installed',
        {
          details: { hint: 'run `npm install` (with devDependencies)' },
          cause: error,
        },
      )
    }
    const { dashboardViteConfig } = await import('../../web/vite.config.ts')
    const outDir = mkdtempSync(join(webRoot, '.dist-build-'))
    try {
      await vite.build({ configFile: false, ...dashboardViteConfig(outDir) })
      swapIn(outDir)
    } finally {
      rmSync(outDir, { recursive: true, force: true })
    }
    progress(`dashboard built in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  })().finally(() => {
    building = undefined
  })
  return building
}

/** Replaces web/dist with `outDir` by two renames; a concurrent builder's result is as good. */
function swapIn(outDir: string): void {
  const old = `${distDir}.old-${process.pid}-${Date.now()}`
  try {
    if (existsSync(distDir)) renameSync(distDir, old)
  } catch {
    // another process moved it first
  }
  try {
    renameSync(outDir, distDir)
  } catch {
    // another process swapped its build in between: keep that one
  }
  rmSync(old, { recursive: true, force: true })
}

export type DashboardRoutesParameters = {
  /** A progress line for people (the build). */
  progress?: (message: string) => void
  /** Build when stale before serving (default true). */
  build?: boolean
}

/** The dashboard's routes: `/`, `/assets/*`, and an SPA fallback for every other non-API GET. */
export function createDashboardRoutes(parameters: DashboardRoutesParameters = {}): NodeRoutes {
  const progress = parameters.progress ?? (() => {})
  return async (app: FastifyInstance) => {
    let unavailable: string | undefined
    if (parameters.build !== false) {
      try {
        await ensureDashboardBuilt(progress)
      } catch (error) {
        unavailable = (error as Error).message
        progress(`dashboard unavailable: ${unavailable}`)
      }
    }
    const root = resolve(distDir)

    const sendFile = async (reply: FastifyReply, relative: string, fallback: boolean) => {
      const path = resolve(root, `.${sep}${relative}`)
      if (path !== root && !path.startsWith(root + sep)) throw new BaseError('NOT_FOUND', 'no such file')
      let body: Buffer | undefined
      try {
        body = await readFile(path)
      } catch {
        body = undefined
      }
      if (body && !statSync(path).isDirectory()) {
        const hashed = relative.startsWith('assets/')
        return reply
          .header('content-type', contentTypes[extname(path)] ?? 'application/octet-stream')
          .header('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache')
          .header('x-content-type-options', 'nosniff')
          .send(body)
      }
      if (!fallback) throw new BaseError('NOT_FOUND', `no file ${relative}`)
      return sendIndex(reply)
    }

    const sendIndex = async (reply: FastifyReply) => {
      let html: Buffer | undefined
      try {
        html = await readFile(join(root, 'index.html'))
      } catch {
        html = undefined
      }
      if (!html)
        return reply
          .status(503)
          .header('content-type', 'text/html; charset=utf-8')
          .header('cache-control', 'no-store')
          .send(unavailablePage(unavailable ?? 'the dashboard has not been built'))
      return reply
        .header('content-type', 'text/html; charset=utf-8')
        .header('cache-control', 'no-cache')
        .send(html)
    }

    app.get('/', { schema: { hide: true } }, async (_request, reply) => sendIndex(reply))
    app.get('/assets/*', { schema: { hide: true } }, async (request, reply) =>
      sendFile(reply, `assets/${(request.params as { '*': string })['*']}`, false),
    )
    // Deep links (and files at the build's top level) fall back to the app; the API and the C2SP
    // tiles (`/log/`) keep their JSON 404 for unknown routes.
    app.get('/*', { schema: { hide: true } }, async (request, reply) => {
      const path = (request.params as { '*': string })['*']
      const api = ['v1', 'log'].some((prefix) => path === prefix || path.startsWith(`${prefix}/`))
      if (api || path.startsWith('openapi'))
        throw new BaseError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)
      return sendFile(reply, path, !extname(path))
    })
  }
}

function unavailablePage(reason: string): string {
  const escaped = reason.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)
  return `<!doctype html><meta charset="utf-8"><title>Carchain</title>
<body style="font-family:system-ui;max-width:40rem;margin:4rem auto;color:#0f172a">
<h1>Dashboard not available</h1><p>${escaped}.</p>
<p>The node API is running: <a href="/v1/health">/v1/health</a>, <a href="/openapi.json">/openapi.json</a>.</p></body>`
}
