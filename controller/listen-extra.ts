// Further --listen addresses: each one more HTTPS server handing requests to the same fastify app
// (moved out of main.ts unchanged, to keep the composition root short).
import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { keepSessionsAlive } from './rpc/session-keepalive.js';

export interface ExtraListener {
  port: number;
  close(): Promise<void>;
}
/**
 * One more HTTPS (HTTP/2, HTTP/1.1 allowed) server for `app`, as fastify makes its own: same key and
 * chain, no timeouts (config streams live long), the same HTTP/2 PINGs for dead boxes, and on close
 * every session and connection ended (as fastify's forceCloseConnections does for its server).
 */
export async function listenExtra(
  app: FastifyInstance,
  tls: { keyPem: string; certChainPem: string },
  at: { host: string; port: number },
  keepalive: Parameters<typeof keepSessionsAlive>[1],
): Promise<ExtraListener> {
  const server: Http2SecureServer = createSecureServer(
    { allowHTTP1: true, key: tls.keyPem, cert: tls.certChainPem },
    app.routing.bind(app) as unknown as Parameters<typeof createSecureServer>[1],
  );
  server.setTimeout(0);
  keepSessionsAlive(server, keepalive);
  const sessions = new Set<ServerHttp2Session>();
  const sockets = new Set<Socket>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: at.host, port: at.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  let closing: Promise<void> | null = null;
  return {
    port: typeof addr === 'object' && addr ? addr.port : at.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.close();
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
