import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './App.tsx'
import { NodeProvider } from './node-context.tsx'
import './styles.css'

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <NodeProvider>
      <App />
    </NodeProvider>
  </StrictMode>,
)
