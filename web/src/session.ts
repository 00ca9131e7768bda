/**
 * "Sign in as demo owner N": the owner's account derived in the browser from the development
 * mnemonic (a public, test-only key; never do this with a real one), and, where the node offers
 * it, a Sign-In with Ethereum (EIP-4361) session so the node shows that owner's event payloads.
 */
import { useEffect, useState } from 'react'
import type { HDAccount } from 'viem/accounts'
import { createSiweMessage } from 'viem/siwe'
import { callApi, setBearer } from './api.ts'
import { demoOwner } from './chain.ts'
import { restartStream } from './stream.ts'

export type Session = {
  ownerIndex: number
  account: HDAccount
  /** 'signed-in': the node issued a bearer token; otherwise why not. */
  siwe: { state: 'signed-in'; expiresAt?: string } | { state: 'unavailable' | 'failed'; message: string }
}

let current: Session | undefined
const listeners = new Set<(session: Session | undefined) => void>()

function publish(session: Session | undefined) {
  current = session
  for (const listener of listeners) listener(session)
}

export async function signIn(ownerIndex: number, chainId: number): Promise<Session> {
  const account = demoOwner(ownerIndex)
  const nonce = await callApi<{ nonce: string }>('/v1/auth/nonce')
  let siwe: Session['siwe']
  if (nonce.state !== 'ok') {
    siwe = {
      state: nonce.state === 'unavailable' ? 'unavailable' : 'failed',
      message: nonce.state === 'loading' ? 'no answer' : nonce.message,
    }
  } else {
    const message = createSiweMessage({
      address: account.address,
      chainId,
      domain: window.location.host,
      uri: window.location.origin,
      nonce: nonce.data.nonce,
      version: '1',
      statement: 'Sign in to the Carchain fleet console.',
    })
    const signature = await account.signMessage({ message })
    const answer = await callApi<{ token: string; address: string; expiresAt?: string }>('/v1/auth/siwe', {
      method: 'POST',
      body: { message, signature },
    })
    if (answer.state === 'ok') {
      setBearer(answer.data.token)
      restartStream()
      siwe = {
        state: 'signed-in',
        ...(answer.data.expiresAt ? { expiresAt: String(answer.data.expiresAt) } : {}),
      }
    } else siwe = { state: 'failed', message: answer.state === 'loading' ? 'no answer' : answer.message }
  }
  const session: Session = { ownerIndex, account, siwe }
  publish(session)
  return session
}

export function signOut(): void {
  setBearer(undefined)
  restartStream()
  publish(undefined)
}

export function useSession(): Session | undefined {
  const [session, setSession] = useState(current)
  useEffect(() => {
    listeners.add(setSession)
    setSession(current)
    return () => {
      listeners.delete(setSession)
    }
  }, [])
  return session
}
