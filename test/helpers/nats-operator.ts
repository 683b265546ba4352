// A nats-server in operator (decentralised JWT) mode with JetStream, the way
// NATS is run with `nsc`-made accounts, for the WALCAST_NATS_CREDS tests:
// the operator, a system account and an application account with JetStream
// limits, their nkeys and JWTs made here with @nats-io/nkeys and @nats-io/jwt
// (nsc is not needed), the accounts preloaded into a MEMORY resolver. Users'
// .creds files are written as `nsc generate creds` writes them.
import { writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccount, createOperator, createUser, type KeyPair } from '@nats-io/nkeys';
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { startNatsServer, type NatsServer } from './nats.ts';

export interface OperatorNats {
  server: NatsServer;
  /** Where the server's configuration and the creds files written below live. */
  dir: string;
  /** A .creds file for a new user of the application account. */
  userCreds(name: string): Promise<string>;
  stop(): Promise<void>;
}

/** Unlimited: -1 is "no limit" in NATS JWTs; JetStream is enabled for an account by storage limits ≠ 0. */
const NO_LIMITS = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
};

export async function startOperatorNats(): Promise<OperatorNats> {
  const dir = await mkdtemp(join(tmpdir(), 'walcast-test-nats-operator-'));
  const operator = createOperator();
  const system = createAccount();
  const app = createAccount();
  const operatorJwt = await encodeOperator('walcast-test', operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount('SYS', system, {}, { signer: operator });
  const appJwt = await encodeAccount('APP', app, { limits: NO_LIMITS }, { signer: operator });
  const conf = join(dir, 'operator.conf');
  await writeFile(
    conf,
    [
      `operator: ${operatorJwt}`,
      `system_account: ${system.getPublicKey()}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${system.getPublicKey()}: ${systemJwt}`,
      `  ${app.getPublicKey()}: ${appJwt}`,
      '}',
      '',
    ].join('\n'),
  );
  const server = await startNatsServer({ args: ['-c', conf] });
  return {
    server,
    dir,
    userCreds: (name) => writeCreds(dir, name, app),
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A user of `account` (signed by it) as a .creds file: its JWT and its NKey seed. */
export async function writeCreds(dir: string, name: string, account: KeyPair): Promise<string> {
  const user = createUser();
  const jwt = await encodeUser(name, user, account);
  const path = join(dir, `${name}.creds`);
  await writeFile(path, fmtCreds(jwt, user), { mode: 0o600 });
  return path;
}

/** An account no operator of any server here signed: its users are refused. */
export function strangerAccount(): KeyPair {
  return createAccount();
}
