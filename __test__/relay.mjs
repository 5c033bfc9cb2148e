// A TCP relay between the services under test and a real redis-server, to make Redis fail the
// way production networks do: replies held back (latency), the open connections black-holed
// (no byte either way, no RST) while new ones work, new connections sent elsewhere.
import net from 'node:net'

export async function startRelay(targetPort) {
  let target = targetPort
  let latencyMs = 0
  const connections = new Set()
  let accepted = 0
  const server = net.createServer((client) => {
    accepted++
    const upstream = net.connect(target, '127.0.0.1')
    const connection = { client, upstream, hole: false }
    connections.add(connection)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    client.on('data', (d) => connection.hole || upstream.write(d))
    // Replies keep their order: each waits for the one before it and for its own delay.
    let last = Promise.resolve()
    upstream.on('data', (d) => {
      const due = Date.now() + latencyMs
      last = last.then(() => new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())))).then(() => {
        if (!connection.hole && client.writable) client.write(d)
      })
    })
    const end = () => {
      if (connection.hole) return // a black hole never closes on its own
      connections.delete(connection)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    get accepted() {
      return accepted
    },
    /** Holds every reply back this long from now on. */
    setLatency(ms) {
      latencyMs = ms
    },
    /** The open connections stop passing bytes, both ways; new ones work. */
    blackHoleOpenConnections() {
      for (const c of connections) c.hole = true
    },
    /** The open connections are closed (as when the server dies); new ones work. */
    dropOpenConnections() {
      for (const c of connections) {
        c.hole = false
        c.client.destroy()
        c.upstream.destroy()
      }
    },
    /** New connections go to `port`; open ones stay. */
    switchTo(port) {
      target = port
    },
    async close() {
      for (const c of connections) {
        c.hole = false
        c.client.destroy()
        c.upstream.destroy()
      }
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** A server that accepts connections and never answers nor closes them (a host gone silent). */
export async function startBlackHole() {
  const sockets = new Set()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    get accepted() {
      return sockets.size
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
