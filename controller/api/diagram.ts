// GET /v1/diagram: the overlay as a picture — boxes by zone, links with their health, relays, served
// and unserved subnets — as JSON with positions (what the web map draws) or as DOT, SVG or Mermaid
// for the connection paperwork (`crosslink diagram`, the map's download button). Built per request
// from the monitor's latest snapshot and the distributor's last compile: nothing is evaluated here.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { onRequestAsyncHookHandler } from 'fastify';
import type { Clock } from '../../lib/clock.js';
import { buildDiagramModel } from '../diagram/model.js';
import { renderDot } from '../diagram/render-dot.js';
import { renderMermaid } from '../diagram/render-mermaid.js';
import { renderSvg } from '../diagram/render-svg.js';
import type { DiagramModel } from '../diagram/types.js';
import type { DistributionPort } from '../distribute/port.js';
import { DEFAULT_UNDERLAY } from '../policy/types.js';
import type { Store } from '../store/store.js';
import type { HealthReader } from './health-status.js';
import { errorResponses, StringEnum } from './schemas.js';

export const DIAGRAM_FORMATS = ['json', 'dot', 'svg', 'mermaid'] as const;
export type DiagramFormat = (typeof DIAGRAM_FORMATS)[number];

/** Content type and file extension of each format. */
export const DIAGRAM_MEDIA: Readonly<Record<DiagramFormat, { contentType: string; ext: string }>> = {
  json: { contentType: 'application/json; charset=utf-8', ext: 'json' },
  dot: { contentType: 'text/vnd.graphviz; charset=utf-8', ext: 'dot' },
  svg: { contentType: 'image/svg+xml; charset=utf-8', ext: 'svg' },
  mermaid: { contentType: 'text/plain; charset=utf-8', ext: 'mmd' },
};

export interface DiagramRoutesOptions {
  monitor: Pick<HealthReader, 'snapshot'>;
  store: Pick<Store, 'listAgents'>;
  distribution: Pick<DistributionPort, 'currentPolicy' | 'indirectPaths' | 'servingAgent' | 'unservedSubnets'>;
  clock: Clock;
  /** Runs before the route, e.g. `auth.requires('agents.read')`. Absent: open (tests). */
  authorize?: onRequestAsyncHookHandler;
}

/** The model from the controller's current view. */
export async function currentDiagram(opts: DiagramRoutesOptions): Promise<DiagramModel> {
  const current = opts.distribution.currentPolicy();
  const agents = await opts.store.listAgents();
  return buildDiagramModel({
    atMs: opts.clock.nowMs(),
    policy: current?.policy ?? null,
    policyVersion: current?.version ?? null,
    agents: agents.map((a) => ({
      name: a.name,
      underlays: a.endpoints.length > 0 ? a.endpoints.map((e) => e.underlay) : [DEFAULT_UNDERLAY],
      isRelay: a.isRelay,
      isRevoked: a.revokedAtMs !== null,
    })),
    health: opts.monitor.snapshot(),
    indirectPaths: opts.distribution.indirectPaths(),
    servingAgent: (s) => opts.distribution.servingAgent(s),
    unserved: opts.distribution.unservedSubnets(),
  });
}

export function renderDiagram(model: DiagramModel, format: DiagramFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(model);
    case 'dot':
      return renderDot(model);
    case 'svg':
      return renderSvg(model);
    case 'mermaid':
      return renderMermaid(model);
  }
}

const TEXT = Type.String();

export function diagramRoutes(opts: DiagramRoutesOptions): FastifyPluginAsyncTypebox {
  const onRequest = opts.authorize ? { onRequest: opts.authorize } : {};
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins return a promise by contract
  return async (app) => {
    app.get(
      '/v1/diagram',
      {
        ...onRequest,
        schema: {
          summary:
            'The overlay as a diagram: boxes by zone, links with health, relays and permitted rules, subnets (JSON with positions, DOT, SVG or Mermaid)',
          tags: ['health'],
          querystring: Type.Object(
            {
              format: Type.Optional(
                StringEnum(DIAGRAM_FORMATS, {
                  description: 'json (default; controller/diagram/types.ts), dot, svg, mermaid',
                }),
              ),
              download: Type.Optional(
                StringEnum(['true', 'false'] as const, {
                  description: 'true: content-disposition attachment, filename crosslink-overlay.<ext>',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            200: {
              description: 'The diagram in the format asked for',
              content: {
                'application/json': {
                  schema: Type.Object({}, { additionalProperties: true, description: 'DiagramModel' }),
                },
                'text/vnd.graphviz': { schema: TEXT },
                'image/svg+xml': { schema: TEXT },
                'text/plain': { schema: TEXT },
              },
            },
            ...errorResponses(400),
          },
        },
      },
      async (req, reply) => {
        const format = req.query.format ?? 'json';
        const media = DIAGRAM_MEDIA[format];
        const body = renderDiagram(await currentDiagram(opts), format);
        void reply.header('content-type', media.contentType);
        if (req.query.download === 'true')
          void reply.header('content-disposition', `attachment; filename="crosslink-overlay.${media.ext}"`);
        // Already text: sent as it is, not serialized again.
        return reply.serializer((x: unknown) => x as string).send(body);
      },
    );
  };
}
