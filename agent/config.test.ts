import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { parseAgentConfigText, resolveAgentOptions, settingsFromFlags } from './config.js';

function throwsLike(t: Test, fn: () => unknown, pattern: object) {
  try {
    fn();
    t.fail('did not throw');
  } catch (e) {
    t.match(e, pattern);
  }
}

t.test('a full file', async (t) => {
  const s = parseAgentConfigText(
    [
      'join: xljoin1.abc.def',
      'state-dir: /var/lib/crosslink/agent',
      'name: leeds-gw',
      'interface: xl0',
      'listen-port: 51821',
      'endpoint: "[2001:db8::7]:51820"',
      'advertise:',
      '  - 10.20.1.0/24',
      '  - 10.20.2.0/24',
      'status-listen: 127.0.0.1:9474',
      'wireguard: userspace',
      'mtu: 1380',
    ].join('\n'),
  );
  t.same(s, {
    join: 'xljoin1.abc.def',
    stateDir: '/var/lib/crosslink/agent',
    name: 'leeds-gw',
    interfaceName: 'xl0',
    listenPort: 51821,
    endpoint: [{ underlay: 'default', endpoint: '[2001:db8::7]:51820' }],
    advertise: ['10.20.1.0/24', '10.20.2.0/24'],
    statusListen: '127.0.0.1:9474',
    wireguard: 'userspace',
    mtu: 1380,
  });
});

t.test('empty file and empty values mean defaults', async (t) => {
  t.same(parseAgentConfigText(''), {});
  t.same(parseAgentConfigText('# only comments\n'), {});
  const s = parseAgentConfigText('join: ""\nname: ""\nendpoint: ""\nadvertise: []\n');
  t.same(s, { endpoint: [], advertise: [] });
  t.same(resolveAgentOptions({}, s, '1.0'), {
    stateDir: '/var/lib/crosslink/agent',
    join: undefined,
    name: undefined,
    interfaceName: 'crosslink0',
    listenPort: 51820,
    endpoint: '',
    endpoints: [],
    isRelay: false,
    advertise: [],
    statusListen: '127.0.0.1:9474',
    wireguard: 'auto',
    mtu: 1420,
    agentVersion: '1.0',
  });
});

t.test('errors name the key and the line', async (t) => {
  const text = [
    'name: Leeds', // 1
    'listen-port: 70000', // 2
    'advertise:', // 3
    '  - 10.20.1.0/24', // 4
    '  - 10.20.2.1/24', // 5
    '  - banana', // 6
    'wireguard: maybe', // 7
    'colour: blue', // 8
  ].join('\n');
  try {
    parseAgentConfigText(text, 'agent.yaml');
    t.fail('accepted');
  } catch (e) {
    const err = e as { code: string; message: string; details: Array<{ path: string; line: number }> };
    t.equal(err.code, 'config_invalid');
    t.same(
      err.details.map((d) => [d.path, d.line]),
      [
        ['name', 1],
        ['listen-port', 2],
        ['advertise[1]', 5],
        ['advertise[2]', 6],
        ['wireguard', 7],
        ['colour', 8],
      ],
    );
    t.match(
      err.message,
      /^agent\.yaml:5: advertise\[1\]: "10\.20\.2\.1\/24" has host bits set; did you mean 10\.20\.2\.0\/24\?$/m,
    );
    t.match(err.message, /agent\.yaml:8: colour: unknown key/);
  }
});

t.test('YAML syntax errors carry the line', async (t) => {
  throwsLike(t, () => parseAgentConfigText('name: a\nmtu: 1400\nendpoint: "open\n'), {
    code: 'config_invalid',
    details: [{ line: 4, message: /closing/ }],
  }); // reported where the text runs out
  throwsLike(t, () => parseAgentConfigText('- a\n- b\n'), { message: /mapping/ });
  throwsLike(t, () => parseAgentConfigText('name: a\nname: b\n'), { code: 'config_invalid' });
});

t.test('flags override the file; bad flags name the flag', async (t) => {
  const file = parseAgentConfigText('name: from-file\nlisten-port: 1000\nadvertise: [10.0.0.0/8]\n');
  const flags = settingsFromFlags({
    'listen-port': 2000,
    advertise: '10.1.0.0/16,10.2.0.0/16',
    name: undefined,
    _: [],
    $0: 'x',
  });
  const o = resolveAgentOptions(flags, file, 'v');
  t.equal(o.name, 'from-file');
  t.equal(o.listenPort, 2000);
  t.same(o.advertise, ['10.1.0.0/16', '10.2.0.0/16']);
  throwsLike(t, () => settingsFromFlags({ endpoint: 'nohostport' }), { message: /^--endpoint: / });
});

t.test('endpoints: one per named underlay, or a bare HOST:PORT on the underlay "default"', async (t) => {
  const flags = settingsFromFlags({ endpoint: ['n3-wan=10.1.2.3:51820', 'psn-wan=[2001:db8::5]:51820'], relay: true });
  const o = resolveAgentOptions(flags, {}, 'v');
  t.equal(o.endpoint, '10.1.2.3:51820', 'the first is the endpoint an older controller reads');
  t.same(o.endpoints, [
    { underlay: 'n3-wan', endpoint: '10.1.2.3:51820' },
    { underlay: 'psn-wan', endpoint: '[2001:db8::5]:51820' },
  ]);
  t.equal(o.isRelay, true);
  const bare = resolveAgentOptions(settingsFromFlags({ endpoint: '192.0.2.1:51820' }), {}, 'v');
  t.same(
    [bare.endpoint, bare.endpoints, bare.isRelay],
    ['192.0.2.1:51820', [], false],
    'a bare endpoint is announced as before underlays',
  );
  const file = parseAgentConfigText(
    'endpoint:\n  - n3-wan=10.1.2.3:51820\n  - psn-wan=172.16.4.5:51820\nrelay: true\n',
  );
  t.same(file, {
    endpoint: [
      { underlay: 'n3-wan', endpoint: '10.1.2.3:51820' },
      { underlay: 'psn-wan', endpoint: '172.16.4.5:51820' },
    ],
    relay: true,
  });
});

t.test('bad endpoints and relay settings name the flag, the item and the line', async (t) => {
  throwsLike(t, () => settingsFromFlags({ endpoint: ['n3-wan=10.1.2.3:51820', 'psn-wan=nohostport'] }), {
    code: 'config_invalid',
    message:
      /^--endpoint\[1\]: "psn-wan=nohostport": "nohostport" is not host:port or \[v6\]:port \(expected NAME=HOST:PORT\)$/,
  });
  throwsLike(t, () => settingsFromFlags({ endpoint: 'N3 WAN=10.1.2.3:51820' }), {
    message: /^--endpoint: "N3 WAN=10\.1\.2\.3:51820": the underlay name "N3 WAN" is not lowercase/,
  });
  throwsLike(t, () => settingsFromFlags({ endpoint: ['n3-wan=10.1.2.3:51820', 'n3-wan=10.1.2.4:51820'] }), {
    message: /^--endpoint\[1\]: .*underlay "n3-wan" is given twice/,
  });
  throwsLike(t, () => settingsFromFlags({ endpoint: 'n3-wan=10.1.2.3:51820', relay: true }), {
    message: /^--relay: a relay joins two underlays: give an endpoint on each/,
  });
  throwsLike(t, () => parseAgentConfigText('name: a\nendpoint:\n  - n3-wan=10.1.2.3:51820\n  - =10.1.2.4:51820\n'), {
    details: [{ path: 'endpoint[1]', line: 4 }],
  });
  throwsLike(t, () => parseAgentConfigText('relay: perhaps\n'), {
    details: [{ path: 'relay', line: 1, message: 'must be true or false' }],
  });
});

t.test('the shipped example config parses', async (t) => {
  let text: string;
  try {
    text = readFileSync(new URL('../deploy/config/agent.yaml', import.meta.url), 'utf8');
  } catch {
    t.comment('deploy/config/agent.yaml not present');
    return;
  }
  t.doesNotThrow(() => parseAgentConfigText(text));
});
