// The agent RPCs on Fastify: @connectrpc/connect-fastify's plugin, plus one correction. Connect
// answers a request body that does not decode as protobuf with `internal` (HTTP 500, gRPC status 13):
// "parse binary: premature EOF". That is the client's error, and a 5xx tells monitoring the
// controller is broken, so such answers become `invalid_argument` (HTTP 400, gRPC status 3), with
// the message saying which request message did not decode. Connect's JSON decoding already answers
// invalid_argument; nothing else is changed.
import type { FastifyInstance } from 'fastify';
import {
  Code,
  ConnectError,
  createConnectRouter,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
} from '@connectrpc/connect';
import type { UniversalHandler, UniversalServerResponse } from '@connectrpc/connect/protocol';
import * as protoConnect from '@connectrpc/connect/protocol-connect';
import * as protoGrpc from '@connectrpc/connect/protocol-grpc';
import * as protoGrpcWeb from '@connectrpc/connect/protocol-grpc-web';
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import type { FastifyRequest } from 'fastify';
import type { Logger } from '../../lib/logger.js';

export interface ConnectPluginOptions extends Partial<ConnectRouterOptions> {
  routes: (router: ConnectRouter) => void;
  contextValues?: (req: FastifyRequest) => ContextValues;
  log?: Logger;
}

const DECODE_FAILURE = /^parse binary: /;
const GRPC_INTERNAL = String(Code.Internal);
const GRPC_INVALID_ARGUMENT = String(Code.InvalidArgument);

function decodeMessage(typeName: string, message: string): string {
  return `the request body does not decode as ${typeName}: ${message.replace(DECODE_FAILURE, '')}`;
}

/** Connect unary: a JSON error body with code "internal" and a decode message -> 400 invalid_argument. */
function unaryBody(body: Uint8Array, typeName: string): Uint8Array | null {
  let e: { code?: unknown; message?: unknown };
  try {
    e = JSON.parse(Buffer.from(body).toString('utf8')) as typeof e;
  } catch {
    return null;
  }
  if (e.code !== 'internal' || typeof e.message !== 'string' || !DECODE_FAILURE.test(e.message)) return null;
  return Buffer.from(JSON.stringify({ code: 'invalid_argument', message: decodeMessage(typeName, e.message) }));
}

/** Connect streaming: the end-of-stream envelope (flag 0x02) carries {"error":{code,message}}. */
function endStreamEnvelope(chunk: Uint8Array, typeName: string): Uint8Array {
  if (chunk.length < 5 || (chunk[0]! & 0x02) === 0) return chunk;
  const length = Buffer.from(chunk).readUInt32BE(1);
  if (length !== chunk.length - 5) return chunk;
  let end: { error?: { code?: unknown; message?: unknown } };
  try {
    end = JSON.parse(Buffer.from(chunk.subarray(5)).toString('utf8')) as typeof end;
  } catch {
    return chunk;
  }
  const err = end.error;
  if (err?.code !== 'internal' || typeof err.message !== 'string' || !DECODE_FAILURE.test(err.message)) return chunk;
  const json = Buffer.from(
    JSON.stringify({
      ...end,
      error: { ...err, code: 'invalid_argument', message: decodeMessage(typeName, err.message) },
    }),
  );
  const head = Buffer.alloc(5);
  head[0] = chunk[0]!;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/** gRPC and gRPC-web: status 13 with a decode message in the trailers -> status 3. */
function fixGrpcStatus(h: Headers | undefined, typeName: string): void {
  if (h === undefined || h.get('grpc-status') !== GRPC_INTERNAL) return;
  const message = decodeURIComponent(h.get('grpc-message') ?? '');
  if (!DECODE_FAILURE.test(message)) return;
  h.set('grpc-status', GRPC_INVALID_ARGUMENT);
  h.set('grpc-message', encodeURIComponent(decodeMessage(typeName, message)));
}

/** Wraps a universal handler so decode failures of the request answer as the client's error. */
export function decodeFailuresAsInvalidArgument(handler: UniversalHandler, typeName: string): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const res = await handler(req);
    fixGrpcStatus(res.header, typeName);
    if (res.body === undefined) {
      fixGrpcStatus(res.trailer, typeName);
      return res;
    }
    if (res.status === 500) {
      // A Connect unary error: one small JSON body.
      const chunks: Uint8Array[] = [];
      for await (const c of res.body) chunks.push(c);
      const all = Buffer.concat(chunks);
      const fixed = unaryBody(all, typeName);
      if (fixed === null) return { ...res, body: once(all) };
      return { ...res, status: 400, body: once(fixed), header: withLength(res.header, fixed.length) };
    }
    const source = res.body;
    const isConnectStream = /^application\/connect\+/.test(res.header?.get('content-type') ?? '');
    async function* body(): AsyncIterable<Uint8Array> {
      for await (const chunk of source) yield isConnectStream ? endStreamEnvelope(chunk, typeName) : chunk;
      // Trailers are filled in while the body runs: look at them once it has ended.
      fixGrpcStatus(res.trailer, typeName);
    }
    return { ...res, body: body() };
  };
  return Object.assign(wrapped, handler);
}

// eslint-disable-next-line @typescript-eslint/require-await -- one chunk, as the AsyncIterable body Connect takes
async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

function withLength(h: Headers | undefined, length: number): Headers | undefined {
  if (h === undefined || !h.has('content-length')) return h;
  const copy = new Headers(h);
  copy.set('content-length', String(length));
  return copy;
}

/** Registers the routes' handlers on `instance` (a Fastify plugin, as fastifyConnectPlugin). */
export function connectPlugin(
  instance: FastifyInstance,
  opts: ConnectPluginOptions,
  done: (err?: Error) => void,
): void {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...opts });
  opts.routes(router);
  // Fastify must leave every Connect body alone (the handlers read the raw request).
  const none = (_req: unknown, _payload: unknown, d: (err: Error | null, body?: unknown) => void) => d(null, undefined);
  instance.addContentTypeParser(
    [
      protoConnect.contentTypeUnaryJson,
      protoConnect.contentTypeStreamJson,
      protoGrpcWeb.contentTypeProto,
      protoGrpcWeb.contentTypeJson,
      protoGrpc.contentTypeProto,
      protoGrpc.contentTypeJson,
    ],
    none,
  );
  instance.addContentTypeParser(protoGrpc.contentTypeRegExp, none);
  instance.addContentTypeParser(protoGrpcWeb.contentTypeRegExp, none);
  instance.addContentTypeParser(protoConnect.contentTypeRegExp, none);
  for (const uHandler of router.handlers) {
    const handler = decodeFailuresAsInvalidArgument(uHandler, uHandler.method.input.typeName);
    // Hidden from /openapi.json: the agents' RPCs are described by proto/, not by the REST document.
    instance.all(uHandler.requestPath, { schema: { hide: true } }, async (req, reply) => {
      try {
        const uRes = await handler(
          universalRequestFromNodeRequest(req.raw, reply.raw, req.body as never, opts.contextValues?.(req)),
        );
        // Fastify keeps headers on the reply until reply.send, which is not used here.
        for (const [key, value] of Object.entries(reply.getHeaders()))
          if (value !== undefined) reply.raw.setHeader(key, value);
        await universalResponseToNodeResponse(uRes, reply.raw);
      } catch (e) {
        if (ConnectError.from(e).code === Code.Aborted) return;
        opts.log?.warn({ err: e, rpc: uHandler.method.name }, 'rpc handler failed');
      }
    });
  }
  done();
}
