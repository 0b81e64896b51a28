import t from 'tap';
import { formatJoinToken, parseJoinToken } from './join-token.js';

const parts = { controllerUrl: 'https://10.0.0.1:8443', caFingerprint: 'ab'.repeat(32), secret: 'S3cretS3cretS3cretS3cret_-' };

t.test('round trip', async (t) => {
  t.same(parseJoinToken(formatJoinToken(parts)), parts);
  t.same(parseJoinToken(formatJoinToken({ ...parts, agentName: 'gp-armley' })), { ...parts, agentName: 'gp-armley' }, 'carries the agent name');
  t.throws(() => parseJoinToken(formatJoinToken({ ...parts, agentName: 'Bad Name' })), { message: /agent name/ });
});

t.test('malformed tokens are refused with a reason', async (t) => {
  const cases: [string, RegExp][] = [
    ['nonsense', /expected "xljoin1/],
    ['xljoin1.!!!.abc', /base64url JSON|secret/],
    [formatJoinToken({ ...parts, controllerUrl: 'http://x' }), /not https/],
    [formatJoinToken({ ...parts, caFingerprint: 'xyz' }), /fingerprint/],
    [formatJoinToken({ ...parts, secret: 'short' }), /too short/],
  ];
  for (const [text, re] of cases) t.throws(() => parseJoinToken(text), { code: 'config_invalid', message: re }, text.slice(0, 30));
});
