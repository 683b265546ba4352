// What an option is (relay/config.ts assembles the table) and the parsers
// its values go through: each returns undefined for a value it refuses.
import type { Config } from '../config.ts';

export type Parser<T> = (raw: string) => T | undefined;

export interface OptionSpec<K extends keyof Config> {
  key: K;
  env: string;
  flag: string;
  default: Config[K];
  allowed: string;
  parse: Parser<Config[K]>;
  help: string;
  /** A flag that may stand alone (`--insecure`); its variable takes true/false. */
  boolean?: true;
  /** Never echoed in error messages. */
  secret?: true;
  /** The default as help shows it, when the value is left unset on purpose. */
  shown?: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
export const ident: Parser<string> = (v) => (IDENTIFIER.test(v) ? v : undefined);
export const int =
  (min: number, max: number): Parser<number> =>
  (v) => {
    if (!/^\d+$/.test(v)) return undefined;
    const n = Number(v);
    return n >= min && n <= max ? n : undefined;
  };
export const pem: Parser<string> = (v) => {
  // Environment variables often carry a PEM on one line with literal \n.
  const text = v.replace(/\\n/g, '\n').trim();
  return /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----$/.test(text) ? text : undefined;
};
export const httpUrl: Parser<string> = (v) => (/^https?:\/\/\S+$/.test(v) ? v : undefined);
export const origins: Parser<string[]> = (v) => {
  const list = v
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  return list.length > 0 && list.every((o) => o === '*' || /^https?:\/\/[^/\s]+$/.test(o)) ? list : undefined;
};
/** An HS256 secret: at least 32 characters other than whitespace (40 spaces is no secret). */
export const usableSecret: Parser<string> = (v) => (v.replace(/\s/g, '').length >= 32 ? v : undefined);
export const bool: Parser<boolean> = (v) => ({ true: true, '1': true, false: false, '0': false })[v.toLowerCase()];

export function opt<K extends keyof Config>(spec: OptionSpec<K>): OptionSpec<K> {
  return spec;
}
