import { cpa } from '../support/env';

/** `cpa lineage TABLE [--upstream|--downstream] [--json]`: the table graph of the registry (SPEC §13, issue 10). */
describe('cpa lineage', () => {
  it('prints what a mart is computed from, down to the landing files, with each partition dependency', () => {
    const r = cpa(['lineage', 'gold.cost_anomaly_mart', '--upstream']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      'upstream (what gold.cost_anomaly_mart is computed from):',
      'gold.cost_anomaly_mart',
      '└── gold.org_daily_usage_by_service  [window:baseline]',
      '    └── silver.usage_events  [same]',
      '        ├── bronze.usage_events  [window:baseline]',
      '        │   └── landing.usage_events_stream  [all]',
      '        ├── silver.orgs  [all]',
      '        │   └── bronze.orgs  [all]',
      '        │       └── landing.customers_orgs.csv  [all]',
      '        └── silver.resources  [all]',
      '            └── bronze.resources  [all]',
      '                └── landing.resources.csv  [all]',
    ]);
  });

  it('prints what is computed from a table (--downstream --json), serving tables included', () => {
    const r = cpa(['lineage', 'silver.billing', '--downstream', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      table: 'silver.billing',
      downstream: [
        {
          table: 'gold.revenue_by_org_month',
          dep: 'all',
          // the §6b marts that read revenue_by_org_month, then its own serving table
          children: [
            {
              table: 'gold.customer_360',
              dep: 'all',
              children: [{ table: 'serving.customer_360', dep: 'all', children: [] }],
            },
            {
              table: 'gold.marketing_attribution',
              dep: 'all',
              children: [{ table: 'serving.marketing_attribution_by_model', dep: 'all', children: [] }],
            },
            {
              table: 'gold.usage_billing_reconciliation',
              dep: 'all',
              children: [{ table: 'serving.billing_reconciliation_by_month', dep: 'all', children: [] }],
            },
            { table: 'serving.revenue_monthly', dep: 'all', children: [] },
          ],
        },
      ],
    });
  });

  it('shows both directions by default and takes a bare name when one layer has it', () => {
    const r = cpa(['lineage', 'tickets_by_org_date']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      'upstream (what gold.tickets_by_org_date is computed from):\ngold.tickets_by_org_date\n└── silver.tickets',
    );
    expect(r.stdout).toContain(
      'downstream (what is computed from gold.tickets_by_org_date):\ngold.tickets_by_org_date\n└── serving.support_tickets_summary',
    );
  });

  it('refuses an unknown or ambiguous table with one line and a non-zero exit', () => {
    const unknown = cpa(['lineage', 'gold.nope']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^cpa: unknown table 'gold\.nope': known tables are bronze\.billing, .*silver\.users$/),
    ]);
    const ambiguous = cpa(['lineage', 'orgs']);
    expect(ambiguous.code).not.toBe(0);
    expect(ambiguous.stderr.trim()).toBe("cpa: table 'orgs' is ambiguous: say bronze.orgs or silver.orgs");
  });
});
