/**
 * Canonical services and regions with the spellings seen in real feeds. Matching is on a normalised token:
 * trimmed, lower-cased, with '_' and ' ' turned into '-' (so 'US_EAST', ' us east ' and 'us-east' are one token).
 */
export const CANONICAL_SERVICES = ['compute', 'storage', 'database', 'networking', 'analytics', 'genai'] as const;
export const CANONICAL_REGIONS = [
  'us-east',
  'us-west',
  'eu-west',
  'eu-central',
  'ap-south',
  'ap-northeast',
  'sa-east',
] as const;
export const CHANNELS = ['email', 'ads', 'event', 'in_app'] as const;

const SERVICE_ALIASES: Record<(typeof CANONICAL_SERVICES)[number], string[]> = {
  compute: ['compute', 'ec2', 'vm', 'compute_engine'],
  storage: ['storage', 's3', 'blob', 'object_storage'],
  database: ['database', 'db', 'rds', 'sql'],
  networking: ['networking', 'net', 'network', 'vpc'],
  analytics: ['analytics', 'bigquery', 'warehouse'],
  genai: ['genai', 'gen_ai', 'gen-ai', 'ai', 'llm'],
};

/** Normalises a raw spelling to its matching token; mirrors `norm_token()` in the SQL models. */
export function normToken(raw: string): string {
  return raw.trim().toLowerCase().replace(/[_ ]/g, '-');
}

/** Rows of the alias table (kind, token, canonical) loaded into DuckDB as `_aliases`. */
export function aliasRows(): Array<{ kind: 'service' | 'region' | 'channel'; token: string; canonical: string }> {
  const rows: Array<{ kind: 'service' | 'region' | 'channel'; token: string; canonical: string }> = [];
  const add = (kind: 'service' | 'region' | 'channel', token: string, canonical: string): void => {
    const t = normToken(token);
    if (!rows.some((r) => r.kind === kind && r.token === t)) rows.push({ kind, token: t, canonical });
  };
  for (const [canonical, aliases] of Object.entries(SERVICE_ALIASES))
    for (const a of aliases) add('service', a, canonical);
  for (const r of CANONICAL_REGIONS) {
    add('region', r, r);
    add('region', r.replace(/-/g, ''), r);
    add('region', `${r}-1`, r);
  }
  for (const c of CHANNELS) add('channel', c, c);
  return rows;
}
