/**
 * MQTT topics of the upload protocol (docs/ledger.md "MQTT"): a car publishes its batches on
 * its events topic; the node answers on the car's acks topic once the batch is durable.
 */
export const eventsTopic = (vehicle: string): string => `carchain/v1/vehicles/${vehicle.toLowerCase()}/events`
export const acksTopic = (vehicle: string): string => `carchain/v1/vehicles/${vehicle.toLowerCase()}/acks`
/**
 * What the nodes of one deployment subscribe to, sharing the load (MQTT 5 shared subscription).
 * The group is named after the deployment's log, so the nodes of another deployment on the same
 * broker form their own group and never take this one's batches.
 */
export const sharedEventsSubscription = (logId: string): string =>
  `$share/carchain-${logId.replace(/^0x/, '').slice(0, 16)}/carchain/v1/vehicles/+/events`
