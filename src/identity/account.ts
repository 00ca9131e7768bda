/**
 * The car's wallet as a viem account: a `LocalAccount` whose every signature is made by the key
 * store (software file or secure element), so chain code uses the wallet like any viem account
 * while the private key stays in the store.
 */
import {
  type Hex,
  hashMessage,
  hashTypedData,
  keccak256,
  type LocalAccount,
  parseSignature,
  type SignableMessage,
  serializeTransaction,
  type TransactionSerializable,
  type TypedDataDefinition,
} from 'viem'
import { toAccount } from 'viem/accounts'
import { type KeyRef, type KeyStore, signEthereumDigest } from './keystore.ts'

function hexToBytes(hex: Hex): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.slice(2), 'hex'))
}

/**
 * A viem `LocalAccount` for the secp256k1 key `ref`: `sign` (a raw 32-byte hash),
 * `signMessage` (EIP-191), `signTypedData` (EIP-712) and `signTransaction` (any serializer).
 */
export async function keyStoreAccount(store: KeyStore, ref: KeyRef): Promise<LocalAccount<'carchain'>> {
  const address = await store.ethereumAddress(ref)
  const sign = (hash: Hex) => signEthereumDigest(store, ref, hexToBytes(hash))
  const account = toAccount({
    address,
    sign: ({ hash }: { hash: Hex }) => sign(hash),
    signMessage: ({ message }: { message: SignableMessage }) => sign(hashMessage(message)),
    signTypedData: (typedData) => sign(hashTypedData(typedData as TypedDataDefinition)),
    async signTransaction(transaction, options) {
      const serializer = options?.serializer ?? serializeTransaction
      // EIP-155 / EIP-2718: the signature covers keccak256 of the unsigned serialisation.
      const signature = parseSignature(await sign(keccak256(await serializer(transaction))))
      return serializer(transaction as TransactionSerializable, signature)
    },
  })
  return { ...account, source: 'carchain' } as LocalAccount<'carchain'>
}
