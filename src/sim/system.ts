/**
 * `carchain up`'s whole system: the node (src/node/up.ts) with the demo fleet on top, unless
 * `--no-sim`. The fleet's routes (`/v1/sim/*`) and its chargers' sessions
 * (`/v1/charging/sessions`) are mounted either way and are empty without it.
 */
import { join } from 'node:path'
import { type RunningNode, type StartNodeParameters, startNode } from '../node/up.ts'
import { type RunningWitness, startWitness } from '../node/witness-server.ts'
import { parseWitness } from '../node/witnesses.ts'
import { type Fleet, simRoutes, startFleet } from './fleet.ts'

export type RunningSystem = RunningNode & {
  /** The demo fleet, or undefined with `--no-sim`. */
  readonly fleet: Fleet | undefined
  /** The demo's witness (embedded chain only): its URL and cosigner verifier key. */
  readonly witness: { url: string; verifierKey: string } | undefined
}

/** The demo witness's name (its key lives in `<data>/witness/`). */
export const DEMO_WITNESS_NAME = 'carchain.local/demo-witness'

export type StartSystemParameters = Omit<StartNodeParameters, 'extension'>

/** Starts the node and, unless the config says `--no-sim`, the demo fleet once the node listens. */
export async function startSystem(parameters: StartSystemParameters): Promise<RunningSystem> {
  const { config } = parameters
  let fleet: Fleet | undefined
  let witness: RunningWitness | undefined
  const node = await startNode({
    ...parameters,
    extension: {
      // The embedded demo runs one witness (c2sp.org/tlog-witness) that cosigns every checkpoint.
      ...(config.rpcUrl === undefined && {
        async witnesses(log) {
          witness = await startWitness({
            dataDir: join(config.dataDir, 'witness'),
            name: DEMO_WITNESS_NAME,
            logs: log.shards?.map((shard) => shard.verifierKey) ?? [log.verifierKey],
          })
          parameters.progress?.(`demo witness ${witness.url} cosigns the checkpoints`)
          const running = witness
          return {
            witnesses: [parseWitness(`${running.url}=${running.witness.verifierKey}`)],
            stop: () => running.stop(),
          }
        },
      }),
      routes: [simRoutes(() => fleet)],
      // read per request: the fleet starts after the server
      charging: {
        sessions: () => fleet?.chargingSessions() ?? [],
        get book() {
          return fleet?.chargingBook
        },
      },
      async start({ context, url, progress }) {
        if (!config.sim) return undefined
        progress(`starting the demo fleet (${config.vehicles} vehicles)`)
        fleet = await startFleet({
          context,
          nodeUrl: url,
          mqttUrl: config.mqttUrl,
          csmsUrl: config.csmsUrl,
          dataDir: config.dataDir,
          vehicles: config.vehicles,
          progress,
        })
        return fleet
      },
    },
  })
  return {
    ...node,
    fleet,
    witness: witness && { url: witness.url, verifierKey: witness.witness.verifierKey },
  }
}
