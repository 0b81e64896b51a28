// Shared TypeBox schemas: the same objects validate requests and produce /openapi.json.
import { Type, type TSchema, type TUnsafe } from '@fastify/type-provider-typebox';

export const NAME_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$';

export const ErrorDetailSchema = Type.Object(
  {
    path: Type.Optional(Type.String()),
    line: Type.Optional(Type.Integer()),
    column: Type.Optional(Type.Integer()),
    message: Type.String(),
  },
  { additionalProperties: false },
);

export const ErrorBody = Type.Object(
  {
    code: Type.String({ description: 'Stable error code; see docs/errors.md.' }),
    message: Type.String(),
    details: Type.Array(ErrorDetailSchema),
  },
  { $id: 'ErrorBody', additionalProperties: false },
);

/** Every error status a route can answer with, pointing at the shared error body. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const s of [401, 403, ...statuses]) out[s] = Type.Ref('ErrorBody');
  return out;
}

export const NameParam = Type.Object(
  { name: Type.String({ pattern: NAME_PATTERN, maxLength: 63 }) },
  { additionalProperties: false },
);
export const IdParam = Type.Object(
  { id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) },
  { additionalProperties: false },
);

/** A non-negative integer given as query text ("limit=50"): queries are not type-coerced. */
export const IntText = Type.String({ pattern: '^[0-9]{1,15}$' });

/** A string enum (not a union of literals) so a wrong value gets one clear message listing the choices. */
export function StringEnum<T extends string>(values: readonly T[], opts: { description?: string } = {}): TUnsafe<T> {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], ...opts });
}

export const Role = StringEnum(['admin', 'operator', 'auditor'] as const);
