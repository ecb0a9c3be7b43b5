// A real OpenID Connect provider for tests/test_sso.py: node-oidc-provider (OpenID
// Certified), on 127.0.0.1, with one confidential client and accounts read from a JSON
// file (re-read on every use, so a test can change an account's groups).
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (comma-separated), ACCOUNTS_FILE
// ({"alice": {"sub": "opaque id", "password": "...", "claims": {"groups": [...]}}}, keyed
// by the name typed on the login form).
// Prints "issuer <url>" once it listens; stops on SIGTERM.
//
// The interaction (login) pages are its own minimal ones: a login form that checks the
// account's password, then consent is given at once (the tracker is a first-party client).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const accounts = () => JSON.parse(readFileSync(env('ACCOUNTS_FILE'), 'utf8'));

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const readForm = (req) => new Promise((resolve, reject) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => resolve(new URLSearchParams(body)));
  req.on('error', reject);
});

function loginPage(res, uid, message, status = 200) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(`<!doctype html><title>Hospital sign-in</title>
<h1>Hospital sign-in</h1>${message ? `<p class="error">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<input name="login" autocomplete="username"><input name="password" type="password">
<button type="submit">Sign in</button></form>`);
}

async function finishWithConsent(provider, req, res, accountId, details) {
  const { params } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope));
  const grantId = await grant.save();
  const result = { consent: { grantId } };
  if (details.prompt.name === 'login') result.login = { accountId };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

async function interaction(provider, req, res) {
  const [, , uid, action] = new URL(req.url, 'http://x').pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (details.prompt.name === 'consent') {
    return finishWithConsent(provider, req, res, details.session.accountId, details);
  }
  if (req.method === 'GET') return loginPage(res, uid);
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const login = form.get('login') || '';
    const account = accounts()[login];
    if (!account || account.password !== form.get('password')) {
      return loginPage(res, uid, 'Wrong username or password.', 401);
    }
    return finishWithConsent(provider, req, res, account.sub, details);
  }
  res.writeHead(405);
  return res.end();
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const provider = new Provider(issuer, {
    clients: [{
      client_id: env('CLIENT_ID'),
      client_secret: env('CLIENT_SECRET'),
      redirect_uris: env('REDIRECT_URIS').split(','),
      grant_types: ['authorization_code'],
      response_types: ['code'],
    }],
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test', alg: 'RS256', use: 'sig' }] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups'],
    // PKCE for every client, the confidential one too.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, details) => `/interaction/${details.uid}` },
    async findAccount(ctx, id) {
      const account = Object.values(accounts()).find((a) => a.sub === id);
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() { return { sub: id, ...account.claims }; },
      };
    },
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(provider, req, res).catch((error) => {
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        res.end(String(error && error.message));
      });
      return;
    }
    callback(req, res);
  });
  process.stdout.write(`issuer ${issuer}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
