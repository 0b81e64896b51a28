import t from 'tap';
import { formatJoinToken, parseJoinToken } from './join-token.js';

const parts = {
  controllerUrls: ['https://10.0.0.1:8443'],
  caFingerprint: 'ab'.repeat(32),
  secret: 'S3cretS3cretS3cretS3cret_-',
};

/** The JSON in the token's middle part. */
const metaOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

t.test('round trip', async (t) => {
  t.same(parseJoinToken(formatJoinToken(parts)), parts);
  t.same(
    parseJoinToken(formatJoinToken({ ...parts, agentName: 'gp-armley' })),
    { ...parts, agentName: 'gp-armley' },
    'carries the agent name',
  );
  t.throws(() => parseJoinToken(formatJoinToken({ ...parts, agentName: 'Bad Name' })), { message: /agent name/ });
});

t.test('a controller on two networks: every URL, and the first where an older agent looks', async (t) => {
  const two = { ...parts, controllerUrls: ['https://172.31.0.2:8443', 'https://172.30.0.2:8443'] };
  const token = formatJoinToken(two);
  t.same(parseJoinToken(token), two);
  t.match(metaOf(token), { u: 'https://172.31.0.2:8443', us: two.controllerUrls }, 'u stays the first URL');
  t.notOk('us' in metaOf(formatJoinToken(parts)), 'one URL: the token is byte for byte what it was before');
  // A token from a controller that predates the list: only u.
  const old = `xljoin1.${Buffer.from(JSON.stringify({ u: 'https://10.0.0.9:8443', f: parts.caFingerprint })).toString('base64url')}.${parts.secret}`;
  t.same(parseJoinToken(old).controllerUrls, ['https://10.0.0.9:8443']);
});

t.test('malformed tokens are refused with a reason', async (t) => {
  const withMeta = (meta: unknown) =>
    `xljoin1.${Buffer.from(JSON.stringify(meta)).toString('base64url')}.${parts.secret}`;
  const cases: [string, RegExp][] = [
    ['nonsense', /expected "xljoin1/],
    ['xljoin1.!!!.abc', /base64url JSON|secret/],
    [formatJoinToken({ ...parts, controllerUrls: ['http://x'] }), /not https/],
    [
      withMeta({ u: 'https://a:1', us: ['https://a:1', 'http://b:1'], f: parts.caFingerprint }),
      /URL list is not a list of https URLs/,
    ],
    [withMeta({ u: 'https://a:1', us: [], f: parts.caFingerprint }), /URL list/],
    [formatJoinToken({ ...parts, caFingerprint: 'xyz' }), /fingerprint/],
    [formatJoinToken({ ...parts, secret: 'short' }), /too short/],
  ];
  for (const [text, re] of cases)
    t.throws(() => parseJoinToken(text), { code: 'config_invalid', message: re }, text.slice(0, 30));
});
