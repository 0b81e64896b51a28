// The HTML the server writes itself: the login page and the app shell the browser app mounts into.
// No inline script or style (the Content-Security-Policy forbids both); every value written into a
// page goes through escapeHtml. The login page works without JavaScript: a plain form POST.

/** The policy every /ui answer carries: only this origin's files; data: images for the diagram export. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** Text for an HTML element or a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function page(title: string, head: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
${head}
</head>
<body>
${body}
</body>
</html>
`;
}

export const LOGIN_CSS_PATH = '/ui/login.css';

/**
 * The login page. `error`: shown in an alert region the field points at (aria-describedby), so a
 * screen reader announces it with the field; the field takes focus on load.
 */
export function loginPage(opts: { error?: string } = {}): string {
  const error = opts.error ?? '';
  const describedBy = error ? ' aria-describedby="login-error" aria-invalid="true"' : '';
  return page(
    error ? 'Log in (error) — Crosslink' : 'Log in — Crosslink',
    `<link rel="stylesheet" href="${LOGIN_CSS_PATH}">`,
    `<main class="login">
<h1>Crosslink</h1>
<p class="lead">The overlay between N3 and the PSN: map, health, policy and audit.</p>
<form method="post" action="/ui/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="off" autocapitalize="off" spellcheck="false" required autofocus${describedBy}>
<p id="login-error" class="error" role="alert">${escapeHtml(error)}</p>
<button type="submit">Log in</button>
</form>
<p class="hint">Use a token from <code>crosslink token create</code>. An auditor token sees everything and changes nothing.</p>
</main>`,
  );
}

/**
 * The app shell: the browser app (controller/ui/web/, bundled into dist/ui/) renders into #app.
 * Before it is built the shell says so instead of loading a script that is not there.
 */
export function shellPage(opts: { isBuilt: boolean }): string {
  if (!opts.isBuilt)
    return page(
      'Crosslink',
      `<link rel="stylesheet" href="${LOGIN_CSS_PATH}">`,
      `<main class="login">
<h1>Crosslink</h1>
<div id="app"></div>
<p class="error" role="alert">the web view was not built: run make build</p>
<form method="post" action="/ui/logout"><button type="submit">Log out</button></form>
</main>`,
    );
  return page(
    'Crosslink',
    `<link rel="stylesheet" href="/ui/assets/app.css">
<script type="module" src="/ui/assets/app.js"></script>`,
    `<div id="app"></div>
<noscript><p>The Crosslink web view needs JavaScript. The same information is in the CLI: crosslink status.</p></noscript>`,
  );
}

/**
 * The login page's own style (the browser app's CSS may not be built). Contrast: text #1b1b1b and
 * the error #a1001f on white are both above 7:1 (WCAG AAA); the focus ring is 3 px and visible.
 */
export const LOGIN_CSS = `*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,"DejaVu Sans",sans-serif;color:#1b1b1b;background:#f4f5f7}
main.login{max-width:28rem;margin:10vh auto;padding:2rem;background:#fff;border:1px solid #c8ccd2;border-radius:6px}
h1{margin:0 0 .25rem;font-size:1.75rem}
.lead{margin:0 0 1.5rem;color:#3d4247}
label{display:block;font-weight:600;margin-bottom:.25rem}
input{width:100%;padding:.6rem;font:inherit;border:2px solid #5a6068;border-radius:4px}
input[aria-invalid="true"]{border-color:#a1001f}
.error{min-height:1.5em;margin:.5rem 0;color:#a1001f;font-weight:600}
.error:empty{visibility:hidden}
button{padding:.6rem 1.2rem;font:inherit;font-weight:600;color:#fff;background:#004a99;border:0;border-radius:4px;cursor:pointer}
button:hover{background:#003870}
:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}
input:focus-visible{outline:3px solid #ffbf47;outline-offset:0}
.hint{margin-top:1.5rem;font-size:.9rem;color:#3d4247}
code{font-family:"DejaVu Sans Mono",monospace}
`;
