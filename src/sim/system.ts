/**
 * `carchain up`'s whole system: the node (src/node/up.ts) with the demo fleet on top, unless
 * `--no-sim`. The fleet's routes (`/v1/sim/*`) and its chargers' sessions
 * (`/v1/charging/sessions`) are mounted either way and are empty without it.
 */
import { type RunningNode, type StartNodeParameters, startNode } from '../node/up.ts'
import { type Fleet, simRoutes, startFleet } from './fleet.ts'

export type RunningSystem = RunningNode & {
  /** The demo fleet, or undefined with `--no-sim`. */
  readonly fleet: Fleet | undefined
}

export type StartSystemParameters = Omit<StartNodeParameters, 'extension'>

/** Starts the node and, unless the config says `--no-sim`, the demo fleet once the node listens. */
export async function startSystem(parameters: StartSystemParameters): Promise<RunningSystem> {
  const { config } = parameters
  let fleet: Fleet | undefined
  const node = await startNode({
    ...parameters,
    extension: {
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
  return { ...node, fleet }
}
