/**
 * MQTT topics of the upload protocol (docs/ledger.md "MQTT"): a car publishes its batches on
 * its events topic; the node answers on the car's acks topic once the batch is durable.
 */
export const eventsTopic = (vehicle: string): string => `carchain/v1/vehicles/${vehicle.toLowerCase()}/events`
export const acksTopic = (vehicle: string): string => `carchain/v1/vehicles/${vehicle.toLowerCase()}/acks`
/** What several nodes subscribe to, sharing the load (MQTT 5 shared subscription). */
export const sharedEventsSubscription = '$share/carchain/carchain/v1/vehicles/+/events'
