/**
 * Digital keys (docs/keys.md): the public library surface for integrators — typed data, issuing
 * and sharing, the car's offline decision, the chain cache, the link, registry helpers, flows and
 * the online comparison path.
 */
export {
  type AccessAttempt,
  AccessController,
  type AccessControllerOptions,
  type AccessDecision,
  type KeyState,
  type PastChallenge,
} from './access-control.ts'
export {
  CACHE_FILE,
  ChainCache,
  type ChainCacheOptions,
  type ChainCacheSnapshot,
  type ChainCacheStatus,
} from './chain-cache.ts'
export {
  endRental,
  FAMILY_LIFETIME_SEC,
  familyMemberGrant,
  PARCEL_WINDOW_SEC,
  parcelDeliveryGrant,
  startRental,
} from './flows.ts'
export {
  grantSigner,
  type IssueGrantParameters,
  issueGrant,
  issuePasskeyGrant,
  newGrantId,
  signAccessRequest,
  type TypedDataSigner,
} from './grant.ts'
export {
  buildPasskeyRequest,
  buildRequest,
  LinkClient,
  type RequestAccessParameters,
  requestAccess,
} from './link-client.ts'
export {
  type ChallengeMessage,
  formatResult,
  GrantParseCache,
  type LinkMessage,
  MAX_LINK_MESSAGE_BYTES,
  type ParsedRequest,
  parseCarMessage,
  parseRequestMessage,
  type RequestMessage,
  type ResultMessage,
} from './link-protocol.ts'
export { type GrantedHandler, type LinkAttempt, LinkServer, type LinkServerOptions } from './link-server.ts'
export {
  CommandVerifier,
  keyRoutes,
  type OnlineKeyDeps,
  OnlineKeyService,
  type OnlineRequest,
  onlineUnlock,
  parseOnlineRequest,
  type SignedCommand,
  type VehicleCommand,
  vehicleCommandTypes,
} from './online.ts'
export {
  originAllowed,
  type PasskeyAssertion,
  type PasskeyPolicy,
  PasskeyVerifier,
  parseAssertion,
  passkeyChallenge,
  type WireAssertion,
  wireAssertion,
} from './passkey.ts'
export { type AccessRecorder, MemoryAccessRecorder } from './recorder.ts'
export {
  epochOf,
  isOwnerOrManager,
  isRevoked,
  listRevocations,
  type RegistryClients,
  type RevokeParameters,
  revokeAllGrants,
  revokeGrant,
  setRentalUser,
  type TxResult,
  titleTokenId,
} from './registry.ts'
export {
  decodeShareLink,
  encodeShareLink,
  parseSharedKey,
  SHARE_LINK_PREFIX,
  type SharedKey,
  sharedKey,
  sharedKeyDomain,
} from './share-link.ts'
export { parseEthereumSignature, recoverAddress, recoverPoint, SignerKeyCache } from './signatures.ts'
export {
  type AccessRequest,
  type ActionName,
  ALL_SCOPES,
  type AnyGrant,
  type AnySignedGrant,
  accessRequestHasher,
  accessRequestTypedData,
  grantHolder,
  grantTypedData,
  hashAccessRequest,
  hashGrant,
  isPasskeyGrant,
  type KeyDomain,
  type KeyGrant,
  keyTypes,
  MAX_PURPOSE_BYTES,
  type PasskeyGrant,
  parseAction,
  parseActionName,
  parseAnyGrant,
  parseAnySignedGrant,
  parseGrant,
  parsePasskeyGrant,
  parseScopes,
  parseSignedGrant,
  passkeyGrantTypedData,
  RENTAL_SCOPES,
  Scope,
  type SignedGrant,
  type SignedPasskeyGrant,
  scopeNames,
  typedDataDomain,
  typedDataJson,
  ZERO_GRANT_ID,
} from './typed-data.ts'
export { FileUseCounter, MemoryUseCounter, USE_LOG_FILE, type UseCounter } from './use-counter.ts'
