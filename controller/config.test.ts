// Controller settings: the file and the flags, and every mistake named with its key (and line).
import t from 'tap';
import { parseSettingsText, validateSettings } from './config.js';

t.test('url: one or a list, one per network the controller host sits on', async (t) => {
  t.same(parseSettingsText('url: https://ctl.n3.example:8443\n').url, ['https://ctl.n3.example:8443'], 'one URL');
  t.same(parseSettingsText('url:\n  - https://172.31.0.2:8443\n  - https://172.30.0.2:8443\n').url, ['https://172.31.0.2:8443', 'https://172.30.0.2:8443']);
  t.same(validateSettings({ url: ['https://a:1', 'https://b:1'] }), []);
});

t.test('bad urls name the key, the item and the line', async (t) => {
  t.throws(() => parseSettingsText('listen: 0.0.0.0:8443\nurl:\n  - https://172.31.0.2:8443\n  - http://172.30.0.2:8443\n'), {
    code: 'config_invalid', message: /^controller\.yaml:2: url: \[1\] "http:\/\/172\.30\.0\.2:8443" must be https:\/\/HOST\[:PORT\]$/,
  });
  t.match(validateSettings({ url: ['https://a:1', 'https://a:1'] }), [{ path: 'url', message: /"https:\/\/a:1" is given twice/ }]);
  t.throws(() => parseSettingsText('url: 7\n'), { code: 'config_invalid', message: /url: must be a list of text/ });
});
