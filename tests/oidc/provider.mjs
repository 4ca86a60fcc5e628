// A real OpenID Connect provider for the single sign-on tests: panva/oidc-provider (OpenID Certified), on loopback.
//
//   node provider.mjs <settings.json>
//
// settings.json: {"port", "issuer", "keys": [private JWKs], "clients": [client metadata],
//                 "accounts_file": path, "service_roles": {client_id: [roles]}, "cookie_key"}
// The accounts file ({"<login>": {"email", "email_verified", "name", "groups"}}) is read at every sign-in, so a
// test changes someone's groups by rewriting it. Keys are fixed at start: a test rotates them by restarting the
// provider with others on the same port. The sign-in page is a plain form (no password: the login is the account)
// and consent is implied, so a browser or an HTTP client gets through it alike.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function accounts() {
  return JSON.parse(readFileSync(settings.accounts_file, 'utf8'));
}

const configuration = {
  clients: settings.clients,
  jwks: { keys: settings.keys },
  cookies: { keys: [settings.cookie_key] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  conformIdTokenClaims: false, // the claims the scopes name go into the ID token too (as Keycloak and Entra do)
  async findAccount(_ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...account };
      },
    };
  },
  async loadExistingGrant(ctx) {
    // First-party client: consent is implied for every scope and claim it asks for.
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const grant = await ctx.oidc.provider.Grant.find(grantId);
      if (grant) return grant;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
  interactions: {
    url(_ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // Plain pages: the package's own load web fonts, and the tests never reach outside the machine.
      async logoutSource(ctx, form) {
        ctx.body = `<!doctype html><html><head><title>Sign out</title></head><body>${form}`
          + '<button id="idp-logout" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>'
          + '</body></html>';
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = '<!doctype html><html><head><title>Signed out</title></head><body><p>Signed out.</p></body></html>';
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => 'urn:sluice',
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: 'llm',
        audience: 'sluice',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  async extraTokenClaims(_ctx, token) {
    if (token.kind === 'ClientCredentials') {
      return { roles: settings.service_roles[token.clientId] || [] };
    }
    return undefined;
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    const text = Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('; ');
    ctx.body = `<!doctype html><html><head><title>Error</title></head><body><p id="idp-error">${escape(text)}</p></body></html>`;
  },
  pkce: { required: () => true },
  ttl: { AccessToken: 300, AuthorizationCode: 60, IdToken: 300, Interaction: 600, Session: 3600, Grant: 3600, ClientCredentials: 300 },
};

const provider = new Provider(settings.issuer, configuration);
const handle = provider.callback();

function page(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>Test IdP</title></head><body>${html}</body></html>`);
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) break;
  }
  return new URLSearchParams(body);
}

async function interaction(req, res) {
  const url = new URL(req.url, settings.issuer);
  const [, , uid, action] = url.pathname.split('/');
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    if (req.method === 'GET') {
      page(
        res,
        200,
        `<h1>Test IdP sign-in</h1><form method="post" action="/interaction/${escape(uid)}/login">`
          + '<input name="login" aria-label="Username" autofocus>'
          + '<button type="submit" id="idp-continue">Continue</button></form>',
      );
      return;
    }
    if (req.method === 'POST' && action === 'login') {
      const form = await readForm(req);
      const login = form.get('login') || '';
      if (!accounts()[login]) {
        page(res, 200, `<p id="idp-error">No such account: ${escape(login)}</p>`);
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    page(res, 404, 'not found');
  } catch (err) {
    page(res, 400, `<p id="idp-error">${escape(err.message)}</p>`);
  }
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res);
  } else {
    handle(req, res);
  }
});

server.listen(settings.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${settings.issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // a browser's kept-alive connections would hold the port
  });
}
