// The simulated upstream in its own process: its HTTP work and sockets stay out of the process
// being measured. IPC: { type: 'stats' } -> { type: 'stats', stats }; { type: 'close' }.
import { startSimulatedUpstream } from '../lib/simulated-upstream.mjs'

const upstream = await startSimulatedUpstream(JSON.parse(process.argv[2] ?? '{}'))
process.send({ type: 'ready', url: upstream.url })
// Its parent gone (a scenario that threw and a run that exited anyway, a run killed), nothing
// will ever close it: end with it rather than linger with a port open.
process.on('disconnect', () => process.exit(0))
process.on('message', async (message) => {
  if (message.type === 'stats') process.send({ type: 'stats', stats: { ...upstream.stats } })
  if (message.type === 'close') {
    await upstream.close()
    process.disconnect()
  }
})
