/**
 * The caches of the car's hot path (signer tables, grant signers, parsed grants) are `Map`s whose
 * insertion order is their age: this sets `key` as the newest entry and, when `map` already holds
 * `maxEntries` others, drops the oldest first.
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, maxEntries: number): void {
  map.delete(key)
  if (map.size >= maxEntries) {
    const oldest = map.keys().next()
    if (!oldest.done) map.delete(oldest.value)
  }
  map.set(key, value)
}
