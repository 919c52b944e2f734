export { Checker, type CheckContext, type LogView } from './checker.js'
export { SimViolation, type Property } from './errors.js'
export { Rng } from './rng.js'
export { Simulation, runSimulation, TICK, LIVENESS_TIMEOUTS, type SimOptions, type SimStats } from './simulator.js'
