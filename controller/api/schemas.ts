// Shared TypeBox schemas: the same objects validate requests and produce /openapi.json.
import { Type, type TSchema } from '@sinclair/typebox';

export const NAME_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$';

export const ErrorDetailSchema = Type.Object({
  path: Type.Optional(Type.String()),
  line: Type.Optional(Type.Integer()),
  column: Type.Optional(Type.Integer()),
  message: Type.String(),
}, { additionalProperties: false });

export const ErrorBody = Type.Object({
  code: Type.String({ description: 'Stable error code; see docs/errors.md.' }),
  message: Type.String(),
  details: Type.Array(ErrorDetailSchema),
}, { $id: 'ErrorBody', additionalProperties: false });

/** Every error status a route can answer with, pointing at the shared error body. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const s of [401, 403, ...statuses]) out[s] = Type.Ref('ErrorBody');
  return out;
}

export const NameParam = Type.Object({ name: Type.String({ pattern: NAME_PATTERN, maxLength: 63 }) }, { additionalProperties: false });
export const IdParam = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }, { additionalProperties: false });

/** A non-negative integer given as query text ("limit=50"): queries are not type-coerced. */
export const IntText = Type.String({ pattern: '^[0-9]{1,15}$' });

export const Role = Type.Union([Type.Literal('admin'), Type.Literal('operator'), Type.Literal('auditor')]);
