/**
 * What an owner does with the title, as transactions sent as the session (the wallet confirms each):
 * rent the car out (ERC-4907 `setUser`, the renter's phone unlocks with no grant) or end the
 * rental, sell it (ERC-721 `safeTransferFrom` of the title; the sale voids every key, the new
 * owner's epoch starts), and fund the car's own wallet with the token it deposits into charging
 * channels (ERC-20 `transfer`). docs/keys.md "Rental", docs/contracts.md, docs/payments.md.
 */
import { useEffect, useState } from 'react'
import { type Address, isAddress, zeroAddress } from 'viem'
import { demoTokenAbi, vehicleRegistryAbi } from '../chain.ts'
import { Address as AddressText, Badge, Card, formatUnits } from '../components/ui.tsx'
import {
  AddressField,
  ProblemAlert,
  parseTokenAmount,
  useWalletActions,
  WalletActionButton,
} from '../components/wallet-ui.tsx'
import { useNode } from '../node-context.tsx'
import { type Session, sendAs } from '../session.ts'
import { walletProblem } from '../wallet.ts'

type Rental = { user: Address; expires: number }
type Funds = { symbol: string; decimals: number; car: bigint; mine: bigint }

/** The title's token id: the vehicle's address as uint160 (docs/contracts.md). */
const titleId = (vehicle: Address) => BigInt(vehicle)

export function OwnerActions(props: {
  session: Session
  vehicles: { vehicle: Address; vin: string }[]
  onChange(): void
}) {
  const { chain } = useNode()
  const [vehicle, setVehicle] = useState<Address | ''>('')
  const [renter, setRenter] = useState('')
  const [hours, setHours] = useState(48)
  const [buyer, setBuyer] = useState('')
  const [rental, setRental] = useState<Rental>()
  const [amount, setAmount] = useState('10')
  const [funds, setFunds] = useState<Funds>()
  const { busy, done, problem, setProblem, tick, run } = useWalletActions(props.session, props.onChange)
  useEffect(() => {
    const first = props.vehicles[0]
    if (first && !props.vehicles.some((v) => v.vehicle === vehicle)) setVehicle(first.vehicle)
    if (!first) setVehicle('')
  }, [props.vehicles, vehicle])

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick re-reads after a transaction
  useEffect(() => {
    if (!chain || !vehicle) return
    let live = true
    const address = chain.info.contracts.VehicleRegistry
    const token = chain.info.contracts.Token
    Promise.all([
      chain.client.readContract({ address: token, abi: demoTokenAbi, functionName: 'symbol' }),
      chain.client.readContract({ address: token, abi: demoTokenAbi, functionName: 'decimals' }),
      chain.client.readContract({
        address: token,
        abi: demoTokenAbi,
        functionName: 'balanceOf',
        args: [vehicle],
      }),
      chain.client.readContract({
        address: token,
        abi: demoTokenAbi,
        functionName: 'balanceOf',
        args: [props.session.address],
      }),
    ]).then(
      ([symbol, decimals, car, mine]) => live && setFunds({ symbol, decimals, car, mine }),
      (error: Error) =>
        live &&
        setProblem(walletProblem(error, { chainId: chain.info.chainId, address: props.session.address })),
    )
    Promise.all([
      chain.client.readContract({
        address,
        abi: vehicleRegistryAbi,
        functionName: 'userOf',
        args: [titleId(vehicle)],
      }),
      chain.client.readContract({
        address,
        abi: vehicleRegistryAbi,
        functionName: 'userExpires',
        args: [titleId(vehicle)],
      }),
    ]).then(
      ([user, expires]) => live && setRental({ user, expires: Number(expires) }),
      (error: Error) =>
        live &&
        setProblem(walletProblem(error, { chainId: chain.info.chainId, address: props.session.address })),
    )
    return () => {
      live = false
    }
  }, [chain, vehicle, tick, props.session.address])

  if (!chain) return null
  const registry = chain.info.contracts.VehicleRegistry

  const address = (value: string, who: string): Address => {
    if (!isAddress(value, { strict: false }))
      throw new TypeError(`the ${who} must be an address (0x + 40 hex)`)
    return value.toLowerCase() as Address
  }
  const rent = () =>
    run(
      'rent',
      async () => {
        if (!vehicle) throw new TypeError('choose a vehicle')
        if (!(hours > 0)) throw new TypeError('the rental needs a length in hours')
        const until = Math.floor(Date.now() / 1000) + Math.round(hours * 3600)
        await sendAs(props.session, chain, {
          address: registry,
          abi: vehicleRegistryAbi,
          functionName: 'setUser',
          args: [titleId(vehicle), address(renter, 'renter'), BigInt(until)],
        })
      },
      'Rented out: the renter unlocks, locks and starts the car with their phone until the rental ends.',
    )
  const endRental = () =>
    run(
      'end',
      async () => {
        if (!vehicle) throw new TypeError('choose a vehicle')
        await sendAs(props.session, chain, {
          address: registry,
          abi: vehicleRegistryAbi,
          functionName: 'setUser',
          args: [titleId(vehicle), zeroAddress, 0n],
        })
      },
      'Rental ended.',
    )
  const sell = () =>
    run(
      'sell',
      async () => {
        if (!vehicle) throw new TypeError('choose a vehicle')
        const to = address(buyer, 'buyer')
        if (to === props.session.address.toLowerCase()) throw new TypeError('the buyer is you')
        await sendAs(props.session, chain, {
          address: registry,
          abi: vehicleRegistryAbi,
          functionName: 'safeTransferFrom',
          args: [props.session.address, to, titleId(vehicle)],
        })
      },
      'Sold: the title is the buyer’s; every key you granted for it is void.',
    )
  const fund = () =>
    run(
      'fund',
      async () => {
        if (!vehicle || !funds) throw new TypeError('choose a vehicle')
        const value = parseTokenAmount(amount, funds)
        if (value > funds.mine)
          throw new TypeError(
            `your account holds ${formatUnits(funds.mine, funds.decimals)} ${funds.symbol}, less than ${amount}`,
          )
        await sendAs(props.session, chain, {
          address: chain.info.contracts.Token,
          abi: demoTokenAbi,
          functionName: 'transfer',
          args: [vehicle, value],
        })
      },
      'Funded: the car pays its charging channels from its own wallet.',
    )
  const now = Date.now() / 1000
  const rented = rental && rental.user !== zeroAddress && rental.expires >= now

  return (
    <Card title="Rent out, sell, fund">
      <div className="form-grid">
        <label htmlFor="owner-vehicle">
          Vehicle
          <select
            id="owner-vehicle"
            value={vehicle}
            onChange={(e) => setVehicle(e.target.value as Address)}
            data-testid="owner-vehicle"
          >
            {props.vehicles.map((v) => (
              <option key={v.vehicle} value={v.vehicle}>
                {v.vin} · {v.vehicle.slice(0, 10)}…
              </option>
            ))}
          </select>
        </label>
        <div className="rental-state" data-testid="rental-state">
          {rented ? (
            <>
              <Badge tone="info">rented</Badge> to <AddressText value={rental.user} /> until{' '}
              {new Date(rental.expires * 1000).toLocaleString()}
            </>
          ) : (
            <Badge tone="neutral">not rented</Badge>
          )}
        </div>
      </div>
      <h3 className="card-subtitle">Rent out (ERC-4907)</h3>
      <div className="form-row">
        <AddressField
          label="Renter"
          placeholder="0x… the renter's address"
          value={renter}
          onChange={setRenter}
          testId="rent-renter"
        />
        <label>
          For (hours)
          <input type="number" min={1} value={hours} onChange={(e) => setHours(Number(e.target.value))} />
        </label>
        <WalletActionButton action="rent" busy={busy} onClick={rent} disabled={!vehicle} testId="rent-send">
          Rent out
        </WalletActionButton>
        {rented && (
          <WalletActionButton action="end" busy={busy} onClick={endRental} tone="quiet" testId="rent-end">
            End rental
          </WalletActionButton>
        )}
      </div>
      <h3 className="card-subtitle">Sell (transfer the title)</h3>
      <div className="form-row">
        <AddressField
          label="Buyer"
          placeholder="0x… the buyer's address"
          value={buyer}
          onChange={setBuyer}
          testId="sell-buyer"
        />
        <WalletActionButton
          action="sell"
          busy={busy}
          onClick={sell}
          disabled={!vehicle}
          tone="danger"
          testId="sell-send"
        >
          Transfer title
        </WalletActionButton>
      </div>
      <h3 className="card-subtitle">Fund the car's charging wallet</h3>
      <p className="dim" data-testid="car-funds">
        {funds
          ? `The car holds ${formatUnits(funds.car, funds.decimals)} ${funds.symbol} for its charging channels; you hold ${formatUnits(funds.mine, funds.decimals)}.`
          : '…'}
      </p>
      <div className="form-row">
        <label>
          Amount{funds ? ` (${funds.symbol})` : ''}
          <input
            value={amount}
            onChange={(e) => setAmount(e.target.value.trim())}
            data-testid="fund-amount"
          />
        </label>
        <WalletActionButton
          action="fund"
          busy={busy}
          onClick={fund}
          disabled={!vehicle || !funds}
          testId="fund-send"
        >
          Send to the car
        </WalletActionButton>
      </div>
      <ProblemAlert problem={problem} session={props.session} />
      {done && (
        <div className="state state-good" role="status" data-testid="owner-action-done">
          {done}
        </div>
      )}
    </Card>
  )
}
