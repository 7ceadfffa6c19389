import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

const CACHE = process.env.CPA_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'cpa');

/** The OpenLineage JSON Schemas installed by `scripts/tools.sh openlineage` (or CPA_OPENLINEAGE_SPEC_DIR). */
export function openLineageSpecDir(): string {
  const dir = process.env.CPA_OPENLINEAGE_SPEC_DIR ?? path.join(CACHE, 'openlineage-spec');
  if (!fs.existsSync(path.join(dir, 'OpenLineage.json'))) {
    throw new Error('OpenLineage schemas not found: run `bash scripts/tools.sh openlineage`');
  }
  return dir;
}

type Json = Record<string, unknown>;

/**
 * Validates events against the OpenLineage spec (ajv, draft 2020-12, with formats): the core schema (a RunEvent),
 * and every facet container against each facet schema the package has. A facet whose schema file is in the package
 * must name that very version in its `_schemaURL`, so the events are checked against what they claim to be.
 * Returns the errors, one line each ([] = valid).
 */
export function openLineageValidator(): { coreId: string; facetIds: string[]; validate: (e: Json) => string[] } {
  const dir = openLineageSpecDir();
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const core = JSON.parse(fs.readFileSync(path.join(dir, 'OpenLineage.json'), 'utf8')) as Json;
  const coreId = String(core.$id);
  ajv.addSchema(core);
  const facets = fs
    .readdirSync(path.join(dir, 'facets'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ file: f, schema: JSON.parse(fs.readFileSync(path.join(dir, 'facets', f), 'utf8')) as Json }));
  for (const f of facets) ajv.addSchema(f.schema);
  const runEvent = ajv.getSchema(`${coreId}#/$defs/RunEvent`)!;
  const whole = ajv.getSchema(coreId)!;
  const byFile = new Map(facets.map((f) => [f.file, String(f.schema.$id)]));

  const validate = (event: Json): string[] => {
    const errors: string[] = [];
    const check = (fn: typeof whole, data: unknown, where: string) => {
      if (!fn(data)) for (const e of fn.errors ?? []) errors.push(`${where}${e.instancePath} ${e.message ?? ''}`);
    };
    check(whole, event, 'event');
    check(runEvent, event, 'RunEvent');
    const containers: Array<[string, unknown]> = [
      ['run.facets', (event.run as Json | undefined)?.facets],
      ['job.facets', (event.job as Json | undefined)?.facets],
    ];
    for (const side of ['inputs', 'outputs'] as const) {
      ((event[side] as Json[] | undefined) ?? []).forEach((d, i) => {
        for (const k of ['facets', 'inputFacets', 'outputFacets']) containers.push([`${side}[${i}].${k}`, d[k]]);
      });
    }
    for (const [where, container] of containers) {
      if (!container) continue;
      for (const f of facets) check(ajv.getSchema(String(f.schema.$id))!, container, `${where} (${f.file})`);
      for (const [key, value] of Object.entries(container as Json)) {
        const url = String((value as Json)._schemaURL ?? '');
        const file = url.split('#')[0].split('/').pop() ?? '';
        const id = byFile.get(file);
        if (id && !url.startsWith(`${id}#`)) errors.push(`${where}.${key}: _schemaURL ${url} is not the version ${id}`);
      }
    }
    return errors;
  };
  return { coreId, facetIds: [...byFile.values()], validate };
}
