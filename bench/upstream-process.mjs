// The simulated upstream in its own process: its HTTP work and sockets stay out of the process
// being measured. IPC: { type: 'stats' } -> { type: 'stats', stats }; { type: 'close' }.
import { startSimulatedUpstream } from '../lib/simulated-upstream.mjs'

const upstream = await startSimulatedUpstream(JSON.parse(process.argv[2] ?? '{}'))
process.send({ type: 'ready', url: upstream.url })
process.on('message', async (message) => {
  if (message.type === 'stats') process.send({ type: 'stats', stats: { ...upstream.stats } })
  if (message.type === 'close') {
    await upstream.close()
    process.disconnect()
  }
})
