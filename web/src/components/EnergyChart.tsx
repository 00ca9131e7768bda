/** Energy (bars, kWh) and cost (line, token units) per charging session, as inline SVG. */

export type ChartPoint = { key: string; label: string; energyKWh: number; cost: number | undefined }

export function EnergyChart(props: { points: ChartPoint[]; costUnit: string }) {
  const { points } = props
  // Close to the card's on-screen size, so labels keep their font size.
  const width = 1080
  const height = 260
  const pad = { top: 16, right: 56, bottom: 36, left: 48 }
  const innerW = width - pad.left - pad.right
  const innerH = height - pad.top - pad.bottom
  const maxEnergy = niceMax(Math.max(...points.map((p) => p.energyKWh), 1))
  const costs = points.map((p) => p.cost).filter((c): c is number => c !== undefined)
  const maxCost = niceMax(Math.max(...costs, 0.01))
  const slot = innerW / Math.max(points.length, 1)
  const barW = Math.max(4, Math.min(36, slot * 0.6))
  const x = (i: number) => pad.left + slot * i + slot / 2
  const yEnergy = (v: number) => pad.top + innerH - (v / maxEnergy) * innerH
  const yCost = (v: number) => pad.top + innerH - (v / maxCost) * innerH
  const line = points
    .map((p, i) => (p.cost === undefined ? undefined : `${x(i).toFixed(1)},${yCost(p.cost).toFixed(1)}`))
    .filter(Boolean)
    .join(' ')
  const ticks = [0, 0.25, 0.5, 0.75, 1]
  const labelEvery = Math.ceil(points.length / 12)
  return (
    <figure className="chart" data-testid="energy-chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label="Energy and cost per charging session">
        {ticks.map((t) => (
          <g key={t}>
            <line
              x1={pad.left}
              x2={width - pad.right}
              y1={pad.top + innerH * (1 - t)}
              y2={pad.top + innerH * (1 - t)}
              className="chart-grid"
            />
            <text x={pad.left - 8} y={pad.top + innerH * (1 - t) + 4} className="chart-axis" textAnchor="end">
              {fmt(maxEnergy * t)}
            </text>
            {costs.length > 0 && (
              <text x={width - pad.right + 8} y={pad.top + innerH * (1 - t) + 4} className="chart-axis">
                {fmt(maxCost * t)}
              </text>
            )}
          </g>
        ))}
        {points.map((p, i) => (
          <g key={p.key}>
            <rect
              x={x(i) - barW / 2}
              y={yEnergy(p.energyKWh)}
              width={barW}
              height={Math.max(0, pad.top + innerH - yEnergy(p.energyKWh))}
              rx={3}
              className="chart-bar"
            >
              <title>
                {p.label}: {p.energyKWh.toFixed(2)} kWh
                {p.cost === undefined ? '' : `, ${p.cost.toFixed(2)} ${props.costUnit}`}
              </title>
            </rect>
            {i % labelEvery === 0 && (
              <text x={x(i)} y={height - pad.bottom + 16} className="chart-axis" textAnchor="middle">
                {p.label}
              </text>
            )}
          </g>
        ))}
        {line && <polyline points={line} className="chart-line" />}
        {points.map((p, i) =>
          p.cost === undefined ? null : (
            <circle key={p.key} cx={x(i)} cy={yCost(p.cost)} r={3.5} className="chart-point" />
          ),
        )}
        <text x={pad.left} y={10} className="chart-axis">
          kWh
        </text>
        {costs.length > 0 && (
          <text x={width - pad.right + 8} y={10} className="chart-axis">
            {props.costUnit}
          </text>
        )}
      </svg>
      <figcaption>
        <span className="legend legend-bar" /> energy delivered (kWh)
        {costs.length > 0 && (
          <>
            <span className="legend legend-line" /> cost ({props.costUnit})
          </>
        )}
      </figcaption>
    </figure>
  )
}

function niceMax(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude
  return 10 * magnitude
}

function fmt(value: number): string {
  if (value >= 10) return Math.round(value).toString()
  return Number(value.toFixed(2)).toString()
}
