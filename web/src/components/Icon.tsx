/** Line icons as inline SVG (no icon font: the page must look the same without any font). */

const paths: Record<string, string> = {
  fleet:
    'M3 13l2-5.5A2 2 0 0 1 6.9 6h10.2a2 2 0 0 1 1.9 1.5L21 13v4a1 1 0 0 1-1 1h-1a2 2 0 0 1-4 0H9a2 2 0 0 1-4 0H4a1 1 0 0 1-1-1zM3 13h18M7 18h0M17 18h0',
  key: 'M14.5 9.5a4 4 0 1 0-3.9 3.9L10 14v2H8v2H6v2H3v-3l6.4-6.4M16 7h.01',
  bolt: 'M13 2L4 14h7l-1 8 9-12h-7z',
  wallet: 'M3 7a2 2 0 0 1 2-2h13v4M3 7v11a2 2 0 0 0 2 2h15V9H5a2 2 0 0 1-2-2zM16 14.5h.01',
  anchor: 'M12 8a2.5 2.5 0 1 0 0-5 2.5 2.5 0 0 0 0 5zM12 8v13M5 12H2a10 10 0 0 0 20 0h-3M8 11h8',
  brand: 'M12 2l9 5v10l-9 5-9-5V7zM12 22V12M21 7l-9 5-9-5',
}

export function Icon(props: { name: keyof typeof paths | string; size?: number }) {
  const size = props.size ?? 18
  return (
    <svg
      className="icon"
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth={1.8}
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden="true"
    >
      <path d={paths[props.name] ?? ''} />
    </svg>
  )
}
