// Unauthenticated: liveness, readiness, and the CA certificate (clients check it against their pin).
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CrosslinkError } from '../../lib/errors.js';
import type { ApiDeps } from './deps.js';

export function healthRoutes(deps: ApiDeps): FastifyPluginAsyncTypebox {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get(
      '/healthz',
      {
        schema: {
          summary: 'The process is alive',
          tags: ['health'],
          security: [],
          response: { 200: Type.Object({ status: Type.Literal('ok') }) },
        },
      },
      () => ({ status: 'ok' as const }),
    );

    app.get(
      '/readyz',
      {
        schema: {
          summary: 'Database reachable and policy compiled',
          tags: ['health'],
          security: [],
          response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: Type.Ref('ErrorBody') },
        },
      },
      async () => {
        const details = [];
        try {
          await deps.store.ping();
        } catch (e) {
          deps.log.warn({ err: e }, 'readiness: database unreachable');
          details.push({ path: 'database', message: 'unreachable' });
        }
        if (!deps.distribution.isReady()) details.push({ path: 'distribution', message: 'policy not compiled yet' });
        if (details.length) throw new CrosslinkError('unavailable', 'not ready', details);
        return { status: 'ready' as const };
      },
    );

    app.get(
      '/v1/ca',
      {
        schema: {
          summary: "The controller's CA certificate (PEM); verify it against your fingerprint pin",
          tags: ['health'],
          security: [],
        },
      },
      async (_req, reply) => reply.type('application/x-pem-file').send(deps.caCertPem),
    );
  };
}
