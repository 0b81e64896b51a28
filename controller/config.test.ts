// Controller settings: the file and the flags, and every mistake named with its key (and line).
import t from 'tap';
import { listenList, parseSettingsText, validateSettings } from './config.js';
import type { CrosslinkError } from '../lib/errors.js';

t.test('url: one or a list, one per network the controller host sits on', async (t) => {
  t.same(parseSettingsText('url: https://ctl.n3.example:8443\n').url, ['https://ctl.n3.example:8443'], 'one URL');
  t.same(parseSettingsText('url:\n  - https://172.31.0.2:8443\n  - https://172.30.0.2:8443\n').url, [
    'https://172.31.0.2:8443',
    'https://172.30.0.2:8443',
  ]);
  t.same(validateSettings({ url: ['https://a:1', 'https://b:1'] }), []);
});

t.test('bad urls name the key, the item and the line', async (t) => {
  t.throws(
    () => parseSettingsText('listen: 0.0.0.0:8443\nurl:\n  - https://172.31.0.2:8443\n  - http://172.30.0.2:8443\n'),
    {
      code: 'config_invalid',
      message: /^controller\.yaml:2: url\[1\]: "http:\/\/172\.30\.0\.2:8443" must be https:\/\/HOST\[:PORT\]$/,
    },
  );
  t.match(validateSettings({ url: ['https://a:1', 'https://a:1'] }), [
    { path: 'url[1]', message: /^url\[1\]: "https:\/\/a:1" is given twice/ },
  ]);
  t.match(
    validateSettings({ url: ['http://a:1'] }),
    [{ path: 'url', message: /^url: "http:\/\/a:1" must be/ }],
    'one URL: no index',
  );
  t.throws(() => parseSettingsText('url: 7\n'), {
    code: 'config_invalid',
    message: /url: must be text or a list of text/,
  });
});

t.test('listen: one or a list, one per network the controller host sits on', async (t) => {
  t.same(parseSettingsText('listen: 0.0.0.0:8443\n').listen, ['0.0.0.0:8443'], 'one address');
  t.same(parseSettingsText('listen:\n  - 172.31.0.2:8443\n  - 172.30.0.2:8443\n').listen, [
    '172.31.0.2:8443',
    '172.30.0.2:8443',
  ]);
  t.same(validateSettings({ listen: ['172.31.0.2:8443', '172.30.0.2:8443'] }), []);
  t.same(validateSettings({ listen: '127.0.0.1:0' }), [], 'callers may pass one text');
  t.same(
    validateSettings({ listen: ['0.0.0.0:8443', '[fd00::1]:8443'] }),
    [],
    'an IPv4 wildcard does not take an IPv6 address',
  );
  t.same(listenList('a:1'), ['a:1']);
  t.same(listenList(undefined), []);
});

t.test('bad listen addresses name the key, the item and the line', async (t) => {
  t.throws(() => parseSettingsText('url: https://a:1\nlisten:\n  - 172.31.0.2:8443\n  - nowhere\n'), {
    code: 'config_invalid',
    message: /^controller\.yaml:2: listen\[1\]: "nowhere" is not HOST:PORT/,
  });
  t.match(
    validateSettings({ listen: 'nowhere' }),
    [{ path: 'listen', message: /^listen: "nowhere" is not HOST:PORT/ }],
    'one address: no index',
  );
  t.match(validateSettings({ listen: ['a:1', 'a:1'] }), [
    { path: 'listen[1]', message: /^listen\[1\]: "a:1" is given twice/ },
  ]);
  t.match(validateSettings({ listen: ['0.0.0.0:8443', '172.30.0.2:8443'] }), [
    { path: 'listen[1]', message: /share port 8443 and one of them listens on every address/ },
  ]);
  t.match(validateSettings({ listen: ['172.30.0.2:8443', '[::]:8443'] }), [
    { path: 'listen[1]', message: /share port 8443/ },
  ]);
  t.same(validateSettings({ listen: ['0.0.0.0:8443', '172.30.0.2:9443'] }), [], 'another port is fine');
  t.match(validateSettings({ listen: [] }), [{ path: 'listen', message: /at least one/ }]);
  t.throws(() => parseSettingsText('listen: 8443\n'), {
    code: 'config_invalid',
    message: /listen: must be text or a list of text/,
  });
});

t.test('every problem of a config file at once, with the nearest known key', async (t) => {
  const text =
    'data-dir: /var/lib/crosslink\noverlay-cidrs: 100.64.0.0/16\nheartbeat-interval-seconds: 90\nsilent-intervals: "3"\nlog-level: loud\n';
  const err = (() => {
    try {
      parseSettingsText(text, 'c.yaml');
      return null;
    } catch (e) {
      return e as CrosslinkError;
    }
  })();
  t.ok(err, 'refused');
  t.same(
    err!.details.map((d) => [d.line, d.message]),
    [
      [2, 'unknown setting "overlay-cidrs" (did you mean "overlay-cidr"?)'],
      [3, 'heartbeat-interval-seconds: must be between 1 and 30'],
      [4, 'silent-intervals: must be a number'],
      [5, 'log-level: must be one of fatal, error, warn, info, debug, trace, silent'],
    ],
  );
  t.match(
    err!.message,
    /^c\.yaml:2: unknown setting "overlay-cidrs" \(did you mean "overlay-cidr"\?\) \(and 3 more\)$/,
  );
});

t.test('liveness settings: whole numbers in range, each error naming its key and line', async (t) => {
  const ok = parseSettingsText('liveness-interval-ms: 100\nliveness-multiplier: 4\nliveness-port: 51900\n', 'c.yaml');
  t.match(ok, { 'liveness-interval-ms': 100, 'liveness-multiplier': 4, 'liveness-port': 51900 });
  const err = (() => {
    try {
      parseSettingsText('liveness-interval-ms: 2.5\nliveness-multiplier: 1\nliveness-port: 70000\n', 'c.yaml');
      return null;
    } catch (e) {
      return e as CrosslinkError;
    }
  })();
  t.same(
    err?.details.map((d) => [d.line, d.message]),
    [
      [1, 'liveness-interval-ms: must be a whole number from 10 to 60000 (milliseconds)'],
      [2, 'liveness-multiplier: must be a whole number from 2 to 100 (periods)'],
      [3, 'liveness-port: must be a whole number from 1 to 65535 (a UDP port)'],
    ],
  );
});
