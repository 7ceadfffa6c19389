#!/usr/bin/env python3
"""Independent reference figures for the end-to-end test (SPEC §1, §3-§6 + docs/decisions.md).

Usage: python3 derive.py <landing_dir> > expected.json

Pure Python standard library on purpose: the pipeline is DuckDB SQL, this is a second,
independent implementation of the same contract. Money and additive usage are exact
(decimal.Decimal, quantized like DECIMAL(18,6) / DECIMAL(18,9) casts); anomaly statistics are exact
(fractions.Fraction over a trailing baseline, SPEC §5), only the reported scores and ratios are float.
See README.md next to this file for how every figure is derived.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import re
import sys
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

Q6 = Decimal('0.000001')
Q9 = Decimal('0.000000001')
DEC18_6_LIMIT = Decimal(10) ** 12  # DECIMAL(18,6) holds |x| < 10^12
DEC18_9_LIMIT = Decimal(10) ** 9  # DECIMAL(18,9) holds |x| < 10^9
ZERO = Decimal(0)

NUMERIC_RE = re.compile(r'^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$')
INT_RE = re.compile(r'^\s*[+-]?\d+\s*$')
# decisions.md: YYYY-MM-DDTHH:MM[:SS[.fff]] with Z/offset, or no zone (= UTC)
EVENT_TS_RE = re.compile(
    r'^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$'
)
# CSV timestamp columns: a date, or a date-time with 'T' or ' ' separator
CSV_TS_RE = re.compile(
    r'^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$'
)
CSV_MONTH_RE = re.compile(r'^(\d{4})-(\d{2})$')
EMAIL_RE = re.compile(r'^[^@\s]+@[^@\s]+\.[^@\s]+$')

CANON_SERVICES = ('compute', 'storage', 'database', 'networking', 'analytics', 'genai')
CANON_REGIONS = ('us-east', 'us-west', 'eu-west', 'eu-central', 'ap-south', 'ap-northeast', 'sa-east')
SERVICE_ALIASES = {
    'compute': ['ec2', 'vm', 'compute_engine', 'compute'],
    'storage': ['s3', 'blob', 'object_storage', 'storage'],
    'database': ['db', 'rds', 'sql', 'database'],
    'networking': ['net', 'network', 'vpc', 'networking'],
    'analytics': ['bigquery', 'warehouse', 'analytics'],
    'genai': ['gen_ai', 'gen-ai', 'ai', 'llm', 'genai'],
}
# decisions.md gives `us_east|useast|us-east-1 -> us-east` "etc."; the same pattern for every region.
REGION_ALIASES = {r: [r, r.replace('-', ''), r + '-1'] for r in CANON_REGIONS}
UNIT_FROM_METRIC = {'requests': 'count', 'cpu_hours': 'hours', 'storage_gb_hours': 'gb_hours'}
DEFAULT_CURRENCIES = 'USD,EUR,ARS,GBP,BRL,JPY,INR'
CHANNELS = ('email', 'ads', 'event', 'in_app')


def norm_token(s):
    """trim + lower-case; '-', '_' and ' ' are equivalent (all mapped to '-')."""
    s = s.strip().lower()
    return s.replace('_', '-').replace(' ', '-')


SERVICE_MAP = {norm_token(a): c for c, al in SERVICE_ALIASES.items() for a in al}
REGION_MAP = {norm_token(a): c for c, al in REGION_ALIASES.items() for a in al}
CHANNEL_MAP = {norm_token(c): c for c in CHANNELS}


def canon(raw, table):
    if raw is None:
        return None
    return table.get(norm_token(raw))


# ---------------------------------------------------------------------------- scalar parsing


def blank(s):
    return s is None or s.strip() == ''


def dec_cast(text, q=Q6, limit=DEC18_6_LIMIT):
    """TRY_CAST(text AS DECIMAL(18,s)): exact parse of the text, ROUND_HALF_UP to the scale, NULL if not numeric."""
    if text is None or not NUMERIC_RE.match(text):
        return None
    try:
        d = Decimal(text.strip()).quantize(q, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None
    if abs(d) >= limit:
        return None
    return d


def double_cast(text):
    """TRY_CAST(text AS DOUBLE); non-finite results are treated as failed casts."""
    if text is None or not NUMERIC_RE.match(text):
        return None
    try:
        x = float(text.strip())
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def int_cast(text):
    """TRY_CAST(text AS BIGINT/INTEGER): integers, or integral decimals such as '12.0'; else rounded half away from zero."""
    if text is None or not NUMERIC_RE.match(text):
        return None
    if INT_RE.match(text):
        return int(text.strip())
    try:
        return int(Decimal(text.strip()).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        return None


def _tz(zone):
    if zone is None or zone == 'Z':
        return dt.timezone.utc
    sign = -1 if zone[0] == '-' else 1
    digits = zone[1:].replace(':', '')
    hh = int(digits[:2])
    mm = int(digits[2:4]) if len(digits) > 2 else 0
    if hh > 23 or mm > 59:
        raise ValueError('bad offset')
    return dt.timezone(sign * dt.timedelta(hours=hh, minutes=mm))


def _mk_ts(m):
    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    micro = int((frac + '000000')[:6]) if frac else 0
    t = dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), micro, tzinfo=_tz(zone))
    return t.astimezone(dt.timezone.utc)


def parse_event_ts(text):
    """UTC datetime or None (-> bad_timestamp)."""
    if text is None:
        return None
    m = EVENT_TS_RE.match(text.strip())
    if not m:
        return None
    try:
        return _mk_ts(m)
    except ValueError:
        return None


class ContractError(Exception):
    pass


def csv_bool(s):
    v = s.strip().lower()
    if v in ('true', '1', 'yes'):
        return True
    if v in ('false', '0', 'no'):
        return False
    raise ValueError('not a boolean')


def csv_ts(s):
    m = CSV_TS_RE.match(s.strip())
    if not m:
        raise ValueError('not a date/timestamp')
    return _mk_ts(m)


def csv_date(s):
    s = s.strip()
    m = CSV_MONTH_RE.match(s)
    if m:
        return dt.date(int(m.group(1)), int(m.group(2)), 1)
    return csv_ts(s).date()


def csv_dec(s):
    d = dec_cast(s)
    if d is None:
        raise ValueError('not a DECIMAL(18,6)')
    return d


def csv_rate(s):
    # exchange rates are kept at the precision written in the file (a rate, not money)
    if not NUMERIC_RE.match(s):
        raise ValueError('not numeric')
    return Decimal(s.strip())


def csv_double(s):
    x = double_cast(s)
    if x is None:
        raise ValueError('not a DOUBLE')
    return x


S = None  # VARCHAR: kept as written
CSV_CONTRACTS = {
    'orgs': ('customers_orgs.csv', [
        ('org_id', S), ('org_name', S), ('industry', S), ('hq_region', S), ('plan_tier', S),
        ('is_enterprise', csv_bool), ('signup_date', csv_date), ('sales_rep', S), ('lifecycle_stage', S),
        ('marketing_source', S), ('nps_score', csv_double)]),
    'users': ('users.csv', [
        ('user_id', S), ('org_id', S), ('email', S), ('role', S), ('active', csv_bool),
        ('created_at', csv_ts), ('last_login', csv_ts)]),
    'resources': ('resources.csv', [
        ('resource_id', S), ('org_id', S), ('service', S), ('region', S), ('created_at', csv_ts),
        ('state', S), ('tags_json', S)]),
    'billing': ('billing_monthly.csv', [
        ('invoice_id', S), ('org_id', S), ('month', csv_date), ('subtotal', csv_dec), ('credits', csv_dec),
        ('taxes', csv_dec), ('currency', S), ('exchange_rate_to_usd', csv_rate)]),
    'tickets': ('support_tickets.csv', [
        ('ticket_id', S), ('org_id', S), ('category', S), ('severity', S), ('created_at', csv_ts),
        ('resolved_at', csv_ts), ('csat', csv_double), ('sla_breached', csv_bool)]),
    'marketing_touches': ('marketing_touches.csv', [
        ('touch_id', S), ('org_id', S), ('campaign', S), ('channel', S), ('timestamp', csv_ts),
        ('clicked', csv_bool), ('converted', csv_bool)]),
    'nps_surveys': ('nps_surveys.csv', [
        ('org_id', S), ('survey_date', csv_date), ('nps_score', csv_double), ('comment', S)]),
}
BATCH_TABLES = ['orgs', 'users', 'resources', 'billing', 'tickets', 'marketing_touches', 'nps_surveys']


def load_csv(path, columns):
    """Bronze: header and every value checked against the contract; any violation rejects the whole file."""
    names = [c for c, _ in columns]
    rows = []
    with open(path, 'r', encoding='utf-8-sig', newline='') as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != names:
            raise ContractError(f'{path}: line 1: header {header!r} != contract {names!r}')
        for rec in reader:
            line = reader.line_num
            if rec == []:
                continue  # blank line
            if len(rec) != len(names):
                raise ContractError(f'{path}: line {line}: {len(rec)} fields, contract has {len(names)}')
            row = {'_line': line}
            for (name, conv), raw in zip(columns, rec):
                if raw == '':
                    row[name] = None
                elif conv is None:
                    row[name] = raw
                else:
                    try:
                        row[name] = conv(raw)
                    except (ValueError, InvalidOperation) as e:
                        raise ContractError(f'{path}: line {line}: column {name}: {raw!r}: {e}') from None
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------- events bronze


class RawNum(str):
    """A JSON number kept as the text it was written with."""


def _no_constants(name):
    raise ValueError(f'non-standard JSON constant {name}')


def as_text(v):
    """A JSON field read as VARCHAR."""
    if v is None:
        return None
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, str):
        return str(v)
    return json.dumps(v, separators=(',', ':'), ensure_ascii=False)


def load_events(landing):
    stream = os.path.join(landing, 'usage_events_stream')
    files = sorted(f for f in os.listdir(stream) if f.endswith('.jsonl')) if os.path.isdir(stream) else []
    malformed = 0
    seen = set()
    rows = []
    lines_total = 0
    for fname in files:
        with open(os.path.join(stream, fname), 'rb') as fh:
            data = fh.read()
        for lineno, raw in enumerate(data.split(b'\n'), start=1):
            if lineno == 1 and raw.startswith(b'\xef\xbb\xbf'):
                raw = raw[3:]
            if raw.strip() == b'':
                continue  # empty / whitespace-only: skipped, not counted
            lines_total += 1
            try:
                text = raw.decode('utf-8')
                obj = json.loads(text, parse_float=RawNum, parse_int=RawNum, parse_constant=_no_constants)
            except (UnicodeDecodeError, ValueError, RecursionError):
                malformed += 1
                continue
            if not isinstance(obj, dict):
                malformed += 1
                continue
            f = {k: as_text(obj.get(k)) for k in (
                'event_id', 'timestamp', 'org_id', 'resource_id', 'service', 'region', 'metric', 'value',
                'unit', 'cost_usd_increment', 'schema_version', 'carbon_kg', 'genai_tokens')}
            eid = f['event_id']
            if not blank(eid):
                if eid in seen:
                    continue  # first seen wins
                seen.add(eid)
            sv = int_cast(f['schema_version'])
            ts = parse_event_ts(f['timestamp'])
            rows.append({
                'event_id': eid,
                'timestamp_raw': f['timestamp'],
                'ts': ts,
                'usage_date': ts.date() if ts else None,
                'org_id': f['org_id'],
                'resource_id': f['resource_id'],
                'service_raw': f['service'],
                'region_raw': f['region'],
                'metric': f['metric'],
                'value_raw': f['value'],
                'unit': f['unit'],
                'cost': dec_cast(f['cost_usd_increment']),
                'schema_version': sv,
                'carbon_kg': None if sv == 1 else dec_cast(f['carbon_kg'], Q9, DEC18_9_LIMIT),
                'genai_tokens': None if sv == 1 else int_cast(f['genai_tokens']),
                '_file': fname,
                '_line': lineno,
            })
    return rows, malformed, len(seen), len(files), lines_total


# ---------------------------------------------------------------------------- statistics (SPEC §5)
#
# Exact rational arithmetic over the Decimal costs: mean, variance, median, MAD and p99 are Fractions, so "a non-zero
# spread" and every threshold comparison are decided exactly; only the reported scores become floats.


def env_number(name, default, cast=Fraction):
    raw = os.environ.get(name, '').strip()
    return cast(raw) if raw else cast(default)


BASELINE_DAYS = env_number('CPA_ANOMALY_BASELINE_DAYS', 28, int)  # the baseline of day d is [d - N, d - 1]
MIN_OBS = env_number('CPA_ANOMALY_MIN_OBS', 7, int)
Z_THR = env_number('CPA_ANOMALY_ZSCORE', '3')
MAD_THR = env_number('CPA_ANOMALY_ROBUST_Z', '3.5')
PCTL_FACTOR = env_number('CPA_ANOMALY_PCTL_FACTOR', '1.5')
MAD_K = Fraction('0.6745')
HALF = Fraction(1, 2)
P99 = Fraction(99, 100)


def quantile_cont(sorted_xs, q):
    """Linearly interpolated quantile at position (n - 1)·q of an ascending list (exact for Fractions)."""
    n = len(sorted_xs)
    pos = (n - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_xs[lo] + (pos - lo) * (sorted_xs[hi] - sorted_xs[lo])


def baseline_stats(xs):
    """None when the baseline has fewer than MIN_OBS observations; else (mean, variance, median, mad, p99).

    variance is the sample variance (n - 1), MAD = median(|x - median|) with no 1.4826 factor.
    """
    n = len(xs)
    if n < MIN_OBS:
        return None
    fx = [Fraction(x) for x in xs]
    mean = sum(fx, Fraction(0)) / n
    var = sum(((x - mean) ** 2 for x in fx), Fraction(0)) / (n - 1)
    s = sorted(fx)
    med = quantile_cont(s, HALF)
    mad = quantile_cont(sorted(abs(x - med) for x in fx), HALF)
    p99 = quantile_cont(s, P99)
    return mean, var, med, mad, p99


def score(x, st):
    """(zscore, robust_z, zflag, madflag, pctlflag) of observation x (a Decimal) against its baseline's statistics.

    Scores are signed and unrounded (None when not defined); flags compare absolute values exactly.
    """
    if st is None:
        return None, None, False, False, False
    mean, var, med, mad, p99 = st
    x = Fraction(x)
    z = rz = None
    zf = mf = False
    if var > 0:
        z = float(x - mean) / math.sqrt(var)
        zf = (x - mean) ** 2 > Z_THR ** 2 * var  # |x - mean| / sd > Z_THR
    if mad > 0:
        rzx = MAD_K * (x - med) / mad
        rz = float(rzx)
        mf = abs(rzx) > MAD_THR
    pf = x > PCTL_FACTOR * p99
    return z, rz, zf, mf, pf


def trailing_baselines(by_day):
    """{day: [observations]} of one series -> {day: statistics of its baseline [day - N, day - 1]}."""
    out = {}
    for day in by_day:
        window = []
        for k in range(1, BASELINE_DAYS + 1):
            window.extend(by_day.get(day - dt.timedelta(days=k), ()))
        out[day] = baseline_stats(window)
    return out


def r6(x):
    """round(x, 6) on a DOUBLE, half away from zero."""
    if x is None:
        return None
    return math.copysign(math.floor(abs(x) * 1e6 + 0.5), x) / 1e6


def dstr(d, q=Q6):
    if d is None:
        return None
    d = d.quantize(q, rounding=ROUND_HALF_UP)
    if d == 0:
        d = abs(d)
    return f'{d:f}'


def fsum6(xs):
    return r6(math.fsum(x for x in xs if x is not None))


# ---------------------------------------------------------------------------- silver batch tables


def group_by(rows, key):
    """Rows grouped by key(row), in their order."""
    out = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return out


def org_of(row):
    return row['org_id']


def silver_batch(name, rows, quarantine, currencies):
    q = quarantine[name]
    key_cols = {'orgs': ('org_id',), 'users': ('user_id',), 'resources': ('resource_id',), 'billing': ('invoice_id',),
                'tickets': ('ticket_id',), 'marketing_touches': ('touch_id',),
                'nps_surveys': ('org_id', 'survey_date')}[name]
    seen = set()
    kept = []
    for r in rows:
        if any(r[k] is None or (isinstance(r[k], str) and r[k].strip() == '') for k in key_cols):
            q['missing_required'] += 1
            continue
        key = tuple(r[k] for k in key_cols)
        if key in seen:
            q['duplicate_key'] += 1
            continue
        seen.add(key)
        r = dict(r)
        if name == 'orgs':
            r['nps_out_of_range'] = r['nps_score'] is not None and not (-100 <= r['nps_score'] <= 100)
            if r['nps_out_of_range']:
                r['nps_score'] = None
        elif name == 'users':
            email = r['email']
            if email is None or not EMAIL_RE.match(email.strip()):
                q['invalid_email'] += 1
                continue
        elif name == 'billing':
            if r['subtotal'] is not None and r['subtotal'] < 0:
                q['negative_subtotal'] += 1
                continue
            cur = r['currency'].strip().upper() if r['currency'] is not None else None
            if cur not in currencies:
                q['unknown_currency'] += 1
                continue
            fx_file = r['exchange_rate_to_usd']
            if cur == 'USD':
                fx = Decimal(1)
                r['fx_corrected'] = fx_file is None or fx_file != 1
            else:
                if fx_file is None or fx_file <= 0:
                    q['bad_fx'] += 1
                    continue
                fx = fx_file
                r['fx_corrected'] = False
            r['currency'] = cur
            r['fx'] = fx
            r['credits'] = r['credits'] if r['credits'] is not None else ZERO
            r['taxes'] = r['taxes'] if r['taxes'] is not None else ZERO
            r['billing_month'] = r['month'].replace(day=1) if r['month'] is not None else None
        elif name == 'tickets':
            if r['created_at'] is not None and r['resolved_at'] is not None and r['resolved_at'] < r['created_at']:
                q['bad_interval'] += 1
                continue
            r['csat_out_of_range'] = r['csat'] is not None and not (1 <= r['csat'] <= 5)
            if r['csat_out_of_range']:
                r['csat'] = None
        elif name == 'nps_surveys':
            if r['nps_score'] is None:
                q['missing_score'] += 1
                continue
            if not (-100 <= r['nps_score'] <= 100):
                q['out_of_range'] += 1
                continue
        elif name == 'resources':
            r['service'] = canon(r['service'], SERVICE_MAP)
            r['region'] = canon(r['region'], REGION_MAP)
        elif name == 'marketing_touches':
            # an unknown channel is kept as written, trimmed and lower-cased (silver/marketing_touches.sql)
            raw = r['channel']
            r['channel'] = canon(raw, CHANNEL_MAP) or (raw.strip(' ').lower() if raw is not None else None)
        kept.append(r)
    return kept


# ---------------------------------------------------------------------------- main derivation


def derive(landing):
    currencies = {c.strip().upper() for c in os.environ.get('CPA_CURRENCIES', DEFAULT_CURRENCIES).split(',') if c.strip()}
    out = {'bronze': {}, 'quarantine': {}, 'silver': {}, 'gold': {}, 'spot_checks': []}
    quarantine = {t: defaultdict(int) for t in ['usage_events'] + BATCH_TABLES}
    notes = []

    # ---- bronze
    events, malformed, distinct_ids, n_files, n_lines = load_events(landing)
    out['bronze']['usage_events'] = {'rows': len(events), 'distinct_event_ids': distinct_ids}
    if malformed:
        quarantine['usage_events']['malformed_json'] = malformed
    bronze_batch = {}
    for t in BATCH_TABLES:
        fname, cols = CSV_CONTRACTS[t]
        try:
            bronze_batch[t] = load_csv(os.path.join(landing, fname), cols)
        except (ContractError, FileNotFoundError, UnicodeDecodeError, csv.Error) as e:
            print(f'contract violation, file rejected: {e}', file=sys.stderr)
            notes.append(str(e))
            bronze_batch[t] = []
        out['bronze'][t] = {'rows': len(bronze_batch[t])}

    # ---- silver batch
    silver = {t: silver_batch(t, bronze_batch[t], quarantine, currencies) for t in BATCH_TABLES}
    orgs_by_id = {r['org_id']: r for r in silver['orgs']}
    resource_ids = {r['resource_id'] for r in silver['resources']}

    # ---- silver events
    qe = quarantine['usage_events']
    kept = []
    for e in events:
        if any(blank(e[k]) for k in ('event_id', 'timestamp_raw', 'org_id', 'service_raw')) or e['cost'] is None:
            qe['missing_required'] += 1
            continue
        if e['ts'] is None:
            qe['bad_timestamp'] += 1
            continue
        service = canon(e['service_raw'], SERVICE_MAP)
        if service is None:
            qe['unknown_service'] += 1
            continue
        if e['cost'] < Decimal('-0.01'):
            qe['negative_cost'] += 1
            continue
        e['service'] = service
        vraw = e['value_raw']
        e['value'] = double_cast(vraw)
        e['value_cast_failed'] = vraw is not None and e['value'] is None
        e['value_dec'] = dec_cast(vraw) if e['value'] is not None else None
        metric = e['metric'].strip().lower() if e['metric'] is not None else None
        e['metric_norm'] = metric
        e['unit_imputed'] = False
        if blank(e['unit']) and e['value'] is not None and metric in UNIT_FROM_METRIC:
            e['unit'] = UNIT_FROM_METRIC[metric]
            e['unit_imputed'] = True
        e['region'] = canon(e['region_raw'], REGION_MAP)
        e['region_unknown'] = e['region'] is None
        e['orphan_org'] = e['org_id'] not in orgs_by_id
        e['orphan_resource'] = not blank(e['resource_id']) and e['resource_id'] not in resource_ids
        kept.append(e)

    # decisions.md: event-level statistics within (org_id, service, metric) by default; the spec's literal
    # (org_id, service) grouping when CPA_ANOMALY_EVENT_BY_METRIC=false.
    by_metric = os.environ.get('CPA_ANOMALY_EVENT_BY_METRIC', 'true').lower() in ('1', 'true', 'yes', 'on')
    # SPEC §5: each event against the kept events of its series on the N days before its own day.
    by_os = defaultdict(lambda: defaultdict(list))
    for e in kept:
        m = (e['metric'] or '').strip().lower() if by_metric else ''
        by_os[(e['org_id'], e['service'], m)][e['usage_date']].append(e)
    for days in by_os.values():
        stats = trailing_baselines({d: [e['cost'] for e in evs] for d, evs in days.items()})
        for d, evs in days.items():
            for e in evs:
                _, _, zf, mf, pf = score(e['cost'], stats[d])
                e['a_z'], e['a_mad'], e['a_pctl'] = zf, mf, pf
                e['is_anomaly'] = zf or mf or pf

    out['silver']['usage_events'] = {
        'rows': len(kept),
        'value_cast_failed': sum(e['value_cast_failed'] for e in kept),
        'unit_imputed': sum(e['unit_imputed'] for e in kept),
        'region_unknown': sum(e['region_unknown'] for e in kept),
        'orphan_org': sum(e['orphan_org'] for e in kept),
        'orphan_resource': sum(e['orphan_resource'] for e in kept),
        'anomaly_zscore': sum(e['a_z'] for e in kept),
        'anomaly_mad': sum(e['a_mad'] for e in kept),
        'anomaly_pctl': sum(e['a_pctl'] for e in kept),
        'anomaly_any': sum(e['is_anomaly'] for e in kept),
    }
    for t in BATCH_TABLES:
        out['silver'][t] = {'rows': len(silver[t])}
    out['quarantine'] = {t: {k: v for k, v in sorted(quarantine[t].items()) if v > 0}
                         for t in ['usage_events'] + BATCH_TABLES}

    # ---- gold: org_daily_usage_by_service
    groups = defaultdict(list)
    for e in kept:
        groups[(e['org_id'], e['usage_date'], e['service'])].append(e)
    daily = {}
    for key in sorted(groups):
        evs = groups[key]
        cost = sum((e['cost'] for e in evs), ZERO)

        def metric_sum(m):
            return sum((e['value_dec'] for e in evs if e['metric_norm'] == m and e['value_dec'] is not None), ZERO)

        req = metric_sum('requests')
        has_v2 = any(e['schema_version'] == 2 for e in evs)
        carbon = sum((e['carbon_kg'] for e in evs if e['carbon_kg'] is not None), ZERO) if has_v2 else None
        daily[key] = {
            'org_id': key[0], 'usage_date': key[1].isoformat(), 'service': key[2],
            'total_cost_usd': cost,
            'total_requests': req,
            'cpu_hours': metric_sum('cpu_hours'),
            'storage_gb_hours': metric_sum('storage_gb_hours'),
            'genai_tokens': sum(e['genai_tokens'] or 0 for e in evs),
            'carbon_kg': carbon,
            'event_count': len(evs),
            'avg_cost_per_request': r6(float(cost) / float(req)) if req != 0 else None,
            'anomaly_event_count': sum(e['is_anomaly'] for e in evs),
        }
    d_rows = list(daily.values())
    out['gold']['org_daily_usage_by_service'] = {
        'rows': len(d_rows),
        'sum_total_cost_usd': dstr(sum((r['total_cost_usd'] for r in d_rows), ZERO)),
        'sum_total_requests': dstr(sum((r['total_requests'] for r in d_rows), ZERO)),
        'sum_cpu_hours': dstr(sum((r['cpu_hours'] for r in d_rows), ZERO)),
        'sum_storage_gb_hours': dstr(sum((r['storage_gb_hours'] for r in d_rows), ZERO)),
        'sum_genai_tokens': sum(r['genai_tokens'] for r in d_rows),
        'sum_carbon_kg': dstr(sum((r['carbon_kg'] for r in d_rows if r['carbon_kg'] is not None), ZERO), Q9),
        'null_carbon_rows': sum(r['carbon_kg'] is None for r in d_rows),
        'sum_event_count': sum(r['event_count'] for r in d_rows),
        'null_avg_cost_per_request_rows': sum(r['avg_cost_per_request'] is None for r in d_rows),
        'sum_avg_cost_per_request': fsum6(r['avg_cost_per_request'] for r in d_rows),
        'sum_anomaly_event_count': sum(r['anomaly_event_count'] for r in d_rows),
    }

    # ---- gold: cost_anomaly_mart
    # SPEC §5: each day's total against the series' totals on the days with usage among the N days before it.
    series = defaultdict(dict)
    for key in daily:
        series[(key[0], key[2])][key[1]] = key
    anomaly = {}
    for days in series.values():
        stats = trailing_baselines({d: [daily[k]['total_cost_usd']] for d, k in days.items()})
        for d, k in days.items():
            z, rz, zf, mf, pf = score(daily[k]['total_cost_usd'], stats[d])
            anomaly[k] = {
                'org_id': k[0], 'usage_date': k[1].isoformat(), 'service': k[2],
                'total_cost_usd': daily[k]['total_cost_usd'],
                'zscore': r6(z), 'robust_z': r6(rz),
                'pctl_flag': pf, 'zscore_flag': zf, 'mad_flag': mf, 'is_anomaly': zf or mf or pf,
                'anomaly_event_count': daily[k]['anomaly_event_count'],
            }
    a_rows = [anomaly[k] for k in sorted(anomaly)]
    out['gold']['cost_anomaly_mart'] = {
        'rows': len(a_rows),
        'sum_total_cost_usd': dstr(sum((r['total_cost_usd'] for r in a_rows), ZERO)),
        'zscore_flag': sum(r['zscore_flag'] for r in a_rows),
        'mad_flag': sum(r['mad_flag'] for r in a_rows),
        'pctl_flag': sum(r['pctl_flag'] for r in a_rows),
        'is_anomaly': sum(r['is_anomaly'] for r in a_rows),
        'sum_abs_zscore': fsum6(abs(r['zscore']) for r in a_rows if r['zscore'] is not None),
        'sum_abs_robust_z': fsum6(abs(r['robust_z']) for r in a_rows if r['robust_z'] is not None),
        'null_zscore_rows': sum(r['zscore'] is None for r in a_rows),
        'sum_anomaly_event_count': sum(r['anomaly_event_count'] for r in a_rows),
    }

    # ---- gold: revenue_by_org_month
    bill_groups = defaultdict(list)
    for r in silver['billing']:
        bill_groups[(r['org_id'], r['billing_month'])].append(r)
    revenue = {}
    for key in sorted(bill_groups, key=lambda k: (k[0] or '', k[1] or dt.date.min)):
        invs = bill_groups[key]
        gross_x = sum(((r['subtotal'] or ZERO) * r['fx'] for r in invs), ZERO)
        credits_x = sum((r['credits'] * r['fx'] for r in invs), ZERO)
        taxes_x = sum((r['taxes'] * r['fx'] for r in invs), ZERO)
        gross = gross_x.quantize(Q6, rounding=ROUND_HALF_UP)
        credits = credits_x.quantize(Q6, rounding=ROUND_HALF_UP)
        taxes = taxes_x.quantize(Q6, rounding=ROUND_HALF_UP)
        currs = {r['currency'] for r in invs}
        if len(currs) == 1:
            cur = next(iter(currs))
            sub = sum((r['subtotal'] or ZERO for r in invs), ZERO)
            fx_rate = r6(float(gross_x) / float(sub)) if sub != 0 else r6(float(invs[0]['fx']))
        else:
            cur, fx_rate = 'MIXED', None
        org = orgs_by_id.get(key[0])
        revenue[key] = {
            'org_id': key[0], 'billing_month': key[1].isoformat() if key[1] else None,
            'org_name': org['org_name'] if org else None,
            'industry': org['industry'] if org else None,
            'plan_tier': org['plan_tier'] if org else None,
            'currency_original': cur, 'fx_rate': fx_rate,
            'gross_revenue_usd': gross, 'credits_usd': credits, 'taxes_usd': taxes,
            'net_revenue_usd': gross - credits, 'total_billed_usd': gross - credits + taxes,
            'invoice_count': len(invs),
        }
    rv = list(revenue.values())
    out['gold']['revenue_by_org_month'] = {
        'rows': len(rv),
        'sum_gross_revenue_usd': dstr(sum((r['gross_revenue_usd'] for r in rv), ZERO)),
        'sum_credits_usd': dstr(sum((r['credits_usd'] for r in rv), ZERO)),
        'sum_taxes_usd': dstr(sum((r['taxes_usd'] for r in rv), ZERO)),
        'sum_net_revenue_usd': dstr(sum((r['net_revenue_usd'] for r in rv), ZERO)),
        'sum_total_billed_usd': dstr(sum((r['total_billed_usd'] for r in rv), ZERO)),
        'sum_invoice_count': sum(r['invoice_count'] for r in rv),
        'mixed_currency_rows': sum(r['currency_original'] == 'MIXED' for r in rv),
    }

    # ---- gold: tickets_by_org_date
    tgroups = defaultdict(list)
    for r in silver['tickets']:
        tdate = r['created_at'].date() if r['created_at'] is not None else None
        tgroups[(r['org_id'], tdate, r['severity'])].append(r)
    tickets = {}
    for key in sorted(tgroups, key=lambda k: (k[0] or '', k[1] or dt.date.min, k[2] or '')):
        ts = tgroups[key]
        breaches = sum(1 for r in ts if r['sla_breached'] is True)
        csats = [r['csat'] for r in ts if r['csat'] is not None]
        res_days = [(r['resolved_at'] - r['created_at']).total_seconds() / 86400 for r in ts
                    if r['resolved_at'] is not None and r['created_at'] is not None]
        tickets[key] = {
            'org_id': key[0], 'ticket_date': key[1].isoformat() if key[1] else None, 'severity': key[2],
            'total_tickets': len(ts),
            'open_tickets': sum(1 for r in ts if r['resolved_at'] is None),
            'sla_breach_count': breaches,
            'sla_breach_rate': r6(breaches / len(ts)),
            'avg_csat': r6(math.fsum(csats) / len(csats)) if csats else None,
            'avg_resolution_days': r6(math.fsum(res_days) / len(res_days)) if res_days else None,
        }
    tk = list(tickets.values())
    out['gold']['tickets_by_org_date'] = {
        'rows': len(tk),
        'sum_total_tickets': sum(r['total_tickets'] for r in tk),
        'sum_open_tickets': sum(r['open_tickets'] for r in tk),
        'sum_sla_breach_count': sum(r['sla_breach_count'] for r in tk),
        'sum_sla_breach_rate': fsum6(r['sla_breach_rate'] for r in tk),
        'null_avg_csat_rows': sum(r['avg_csat'] is None for r in tk),
        'sum_avg_csat': fsum6(r['avg_csat'] for r in tk),
        'sum_avg_resolution_days': fsum6(r['avg_resolution_days'] for r in tk),
    }

    # ---- gold: genai_tokens_by_org_date
    ggroups = defaultdict(list)
    for e in kept:
        if e['service'] == 'genai' and e['schema_version'] == 2:
            ggroups[(e['org_id'], e['usage_date'])].append(e)
    genai = {}
    for key in sorted(ggroups):
        evs = ggroups[key]
        tokens = sum(e['genai_tokens'] or 0 for e in evs)
        cost = sum((e['cost'] for e in evs), ZERO)
        genai[key] = {
            'org_id': key[0], 'usage_date': key[1].isoformat(),
            'total_tokens': tokens, 'genai_events': len(evs), 'total_cost_usd': cost,
            'est_cost_per_1k_tokens': r6(float(cost) / tokens * 1000) if tokens != 0 else None,
        }
    gr = list(genai.values())
    out['gold']['genai_tokens_by_org_date'] = {
        'rows': len(gr),
        'sum_total_tokens': sum(r['total_tokens'] for r in gr),
        'sum_genai_events': sum(r['genai_events'] for r in gr),
        'sum_total_cost_usd': dstr(sum((r['total_cost_usd'] for r in gr), ZERO)),
        'sum_est_cost_per_1k_tokens': fsum6(r['est_cost_per_1k_tokens'] for r in gr),
    }

    # ---- gold: org_service_cost_summary
    summary = {}
    if daily:
        dates = [k[1] for k in daily]
        d0, d1 = min(dates), max(dates)
        ndays = (d1 - d0).days + 1
        all_dates = [d0 + dt.timedelta(days=i) for i in range(ndays)]
        pairs = sorted({(k[0], k[2]) for k in daily})
        for org, svc in pairs:
            cost_by_day = [daily[(org, d, svc)]['total_cost_usd'] if (org, d, svc) in daily else ZERO for d in all_dates]
            used = [(org, d, svc) in daily for d in all_dates]
            prefix = [ZERO]
            for c in cost_by_day:
                prefix.append(prefix[-1] + c)
            for i, d in enumerate(all_dates):
                # SPEC §6: only dates with usage of the pair in the 14 days ending at the date
                if not any(used[max(0, i - 13):i + 1]):
                    continue
                summary[(org, d, svc)] = {
                    'org_id': org, 'summary_date': d.isoformat(), 'service': svc,
                    'cost_1d': cost_by_day[i],
                    'cost_7d': prefix[i + 1] - prefix[max(0, i - 6)],
                    'cost_14d': prefix[i + 1] - prefix[max(0, i - 13)],
                }
        by_org_date = defaultdict(list)
        for k, r in summary.items():
            by_org_date[(k[0], k[1])].append(r)
        for rs in by_org_date.values():
            rs_sorted = sorted(rs, key=lambda r: r['service'])
            rs_sorted.sort(key=lambda r: r['cost_14d'], reverse=True)  # stable: ties by service asc
            for rank, r in enumerate(rs_sorted, start=1):
                r['rank_14d'] = rank
    sm = [summary[k] for k in sorted(summary)]
    out['gold']['org_service_cost_summary'] = {
        'rows': len(sm),
        'sum_cost_1d': dstr(sum((r['cost_1d'] for r in sm), ZERO)),
        'sum_cost_7d': dstr(sum((r['cost_7d'] for r in sm), ZERO)),
        'sum_cost_14d': dstr(sum((r['cost_14d'] for r in sm), ZERO)),
        'rank1_rows': sum(r['rank_14d'] == 1 for r in sm),
    }

    # ---- SPEC §6b marts. as_of = the latest usage_date of the kept events; "30d" = [as_of - 29, as_of].
    as_of = max((e['usage_date'] for e in kept), default=None)

    def in_days(d, n):
        return as_of is not None and d is not None and as_of - dt.timedelta(days=n - 1) <= d <= as_of

    def units6(d):
        return int(d.scaleb(6))

    def trunc_div(a, b):
        q = abs(a) // b
        return q if a >= 0 else -q

    def r6n(x):
        return r6(x) if x is not None else None

    # ---- gold: customer_360 (every silver org)
    ev_by_org = group_by(kept, org_of)
    rev_by_org = group_by(rv, org_of)
    tk_by_org = group_by(silver['tickets'], org_of)
    mt_by_org = group_by(silver['marketing_touches'], org_of)
    nps_by_org = group_by(silver['nps_surveys'], org_of)
    us_by_org = group_by(silver['users'], org_of)
    c360 = {}
    for o in silver['orgs']:
        oid = o['org_id']
        evs = ev_by_org.get(oid, [])
        ev30 = [e for e in evs if in_days(e['usage_date'], 30)]
        tks = tk_by_org.get(oid, [])
        touches_o = mt_by_org.get(oid, [])
        surveys = nps_by_org.get(oid, [])
        users_o = us_by_org.get(oid, [])
        revs = rev_by_org.get(oid, [])
        breaches = sum(1 for t in tks if t['sla_breached'] is True)
        csats = [t['csat'] for t in tks if t['csat'] is not None]
        hq = o['hq_region']
        c360[oid] = {
            'org_id': oid,
            'org_name': o['org_name'].strip() if o['org_name'] is not None else None,
            'industry': o['industry'].strip() if o['industry'] is not None else None,
            'plan_tier': o['plan_tier'].strip().lower() if o['plan_tier'] is not None else None,
            'hq_region': canon(hq, REGION_MAP) or hq,
            'is_enterprise': o['is_enterprise'],
            'signup_date': o['signup_date'].isoformat() if o['signup_date'] is not None else None,
            'lifecycle_stage': o['lifecycle_stage'],
            'marketing_source': o['marketing_source'],
            'as_of': as_of.isoformat() if as_of else None,
            'cost_30d': sum((e['cost'] for e in ev30), ZERO),
            'cost_total': sum((e['cost'] for e in evs), ZERO),
            'active_services_30d': len({e['service'] for e in ev30}),
            'genai_tokens_30d': sum(e['genai_tokens'] or 0 for e in ev30 if e['service'] == 'genai'),
            'first_usage_date': min(e['usage_date'] for e in evs).isoformat() if evs else None,
            'last_usage_date': max(e['usage_date'] for e in evs).isoformat() if evs else None,
            'net_revenue_usd_total': sum((r['net_revenue_usd'] for r in revs), ZERO),
            'total_billed_usd_total': sum((r['total_billed_usd'] for r in revs), ZERO),
            'invoice_count': sum(r['invoice_count'] for r in revs),
            'last_billing_month': max(r['billing_month'] for r in revs) if revs else None,
            'tickets_total': len(tks),
            'open_tickets': sum(1 for t in tks if t['resolved_at'] is None),
            'critical_tickets_30d': sum(
                1 for t in tks
                if (t['severity'] or '').strip().lower() == 'critical'
                and in_days(t['created_at'].date() if t['created_at'] else None, 30)),
            'sla_breach_rate': r6(breaches / len(tks)) if tks else None,
            'avg_csat': r6(math.fsum(csats) / len(csats)) if csats else None,
            'touches': len(touches_o),
            'clicks': sum(1 for t in touches_o if t['clicked'] is True),
            'conversions': sum(1 for t in touches_o if t['converted'] is True),
            'last_touch_date': max((t['timestamp'].date() for t in touches_o if t['timestamp']), default=None),
            'latest_nps_score': max(surveys, key=lambda r: r['survey_date'])['nps_score'] if surveys else None,
            'nps_surveys': len(surveys),
            'users_total': len(users_o),
            'active_users': sum(1 for u in users_o if u['active'] is True),
        }
        if c360[oid]['last_touch_date'] is not None:
            c360[oid]['last_touch_date'] = c360[oid]['last_touch_date'].isoformat()
    cr = [c360[k] for k in sorted(c360)]
    out['gold']['customer_360'] = {
        'rows': len(cr),
        'sum_cost_30d': dstr(sum((r['cost_30d'] for r in cr), ZERO)),
        'sum_cost_total': dstr(sum((r['cost_total'] for r in cr), ZERO)),
        'sum_active_services_30d': sum(r['active_services_30d'] for r in cr),
        'sum_genai_tokens_30d': sum(r['genai_tokens_30d'] for r in cr),
        'sum_net_revenue_usd_total': dstr(sum((r['net_revenue_usd_total'] for r in cr), ZERO)),
        'sum_total_billed_usd_total': dstr(sum((r['total_billed_usd_total'] for r in cr), ZERO)),
        'sum_invoice_count': sum(r['invoice_count'] for r in cr),
        'sum_tickets_total': sum(r['tickets_total'] for r in cr),
        'sum_open_tickets': sum(r['open_tickets'] for r in cr),
        'sum_critical_tickets_30d': sum(r['critical_tickets_30d'] for r in cr),
        'null_sla_breach_rate_rows': sum(r['sla_breach_rate'] is None for r in cr),
        'sum_sla_breach_rate': fsum6(r['sla_breach_rate'] for r in cr if r['sla_breach_rate'] is not None),
        'sum_avg_csat': fsum6(r['avg_csat'] for r in cr if r['avg_csat'] is not None),
        'sum_touches': sum(r['touches'] for r in cr),
        'sum_clicks': sum(r['clicks'] for r in cr),
        'sum_conversions': sum(r['conversions'] for r in cr),
        'null_latest_nps_rows': sum(r['latest_nps_score'] is None for r in cr),
        'sum_nps_surveys': sum(r['nps_surveys'] for r in cr),
        'sum_users_total': sum(r['users_total'] for r in cr),
        'sum_active_users': sum(r['active_users'] for r in cr),
        'zero_usage_rows': sum(r['first_usage_date'] is None for r in cr),
    }

    # ---- gold: marketing_attribution. Shares in millionths, truncated; the remainder to the org's earliest touch.
    net_by_org = defaultdict(lambda: ZERO)
    for r in rv:
        net_by_org[r['org_id']] += r['net_revenue_usd']
    attr = {}
    for oid, ts in mt_by_org.items():
        order = sorted(ts, key=lambda t: (t['timestamp'] is None, t['timestamp'] or dt.datetime.min.replace(
            tzinfo=dt.timezone.utc), t['touch_id']))
        n = len(order)
        net_u = units6(net_by_org[oid]) if oid in net_by_org else 0
        base_rev, base_org = trunc_div(net_u, n), trunc_div(10**6, n)
        for i, t in enumerate(order):
            campaign = t['campaign'].strip() if t['campaign'] is not None else None
            channel = t['channel'] if t['channel'] is not None else None
            for model, rev_u, org_u in (
                ('first_touch', net_u if i == 0 else 0, 10**6 if i == 0 else 0),
                ('linear', base_rev + (net_u - base_rev * n if i == 0 else 0),
                 base_org + (10**6 - base_org * n if i == 0 else 0)),
            ):
                a = attr.setdefault((model, channel or '', campaign or ''), {
                    'attribution_model': model, 'channel': channel, 'campaign': campaign,
                    'touches': 0, 'clicks': 0, 'conversions': 0, 'org_u': 0, 'rev_u': 0})
                a['touches'] += 1
                a['clicks'] += t['clicked'] is True
                a['conversions'] += t['converted'] is True
                a['org_u'] += org_u
                a['rev_u'] += rev_u
    ar = []
    for k in sorted(attr):
        a = attr[k]
        ar.append({
            'attribution_model': a['attribution_model'], 'channel': a['channel'], 'campaign': a['campaign'],
            'touches': a['touches'], 'clicks': a['clicks'], 'conversions': a['conversions'],
            'click_rate': r6(a['clicks'] / a['touches']),
            'conversion_rate': r6(a['conversions'] / a['touches']),
            'attributed_orgs': Decimal(a['org_u']).scaleb(-6),
            'attributed_net_revenue_usd': Decimal(a['rev_u']).scaleb(-6),
        })
    out['gold']['marketing_attribution'] = {'rows': len(ar)}
    for model in ('first_touch', 'linear'):
        of = [r for r in ar if r['attribution_model'] == model]
        out['gold']['marketing_attribution'].update({
            f'{model}_rows': len(of),
            f'{model}_sum_touches': sum(r['touches'] for r in of),
            f'{model}_sum_clicks': sum(r['clicks'] for r in of),
            f'{model}_sum_conversions': sum(r['conversions'] for r in of),
            f'{model}_sum_attributed_orgs': dstr(sum((r['attributed_orgs'] for r in of), ZERO)),
            f'{model}_sum_attributed_net_revenue_usd': dstr(sum((r['attributed_net_revenue_usd'] for r in of), ZERO)),
            f'{model}_sum_click_rate': fsum6(r['click_rate'] for r in of),
            f'{model}_sum_conversion_rate': fsum6(r['conversion_rate'] for r in of),
        })

    # ---- gold: resource_utilization (every silver resource; events matched by resource_id)
    ev_by_res = defaultdict(list)
    for e in kept:
        if not blank(e['resource_id']):
            ev_by_res[e['resource_id']].append(e)
    ru = {}
    for r in silver['resources']:
        evs = ev_by_res.get(r['resource_id'], [])
        e30 = [e for e in evs if in_days(e['usage_date'], 30)]
        last = max((e['usage_date'] for e in evs), default=None)

        def msum(m, es=e30):
            return sum((e['value_dec'] for e in es if e['metric_norm'] == m and e['value_dec'] is not None), ZERO)

        state = r['state'].strip().lower() if r['state'] is not None else None
        cost7 = sum((e['cost'] for e in evs if in_days(e['usage_date'], 7)), ZERO)
        ru[r['resource_id']] = {
            'resource_id': r['resource_id'], 'org_id': r['org_id'], 'service': r['service'], 'region': r['region'],
            'state': state,
            'created_at': r['created_at'].strftime('%Y-%m-%d %H:%M:%S') if r['created_at'] is not None else None,
            'as_of': as_of.isoformat() if as_of else None,
            'events_30d': len(e30),
            'active_days_30d': len({e['usage_date'] for e in e30}),
            'cost_30d': sum((e['cost'] for e in e30), ZERO),
            'cpu_hours_30d': msum('cpu_hours'),
            'storage_gb_hours_30d': msum('storage_gb_hours'),
            'requests_30d': msum('requests'),
            'last_usage_date': last.isoformat() if last else None,
            'idle_days': (as_of - last).days if last else None,
            'utilization_class': 'unused' if last is None else ('idle' if not in_days(last, 14) else 'active'),
            'stopped_but_billed': state in ('stopped', 'terminated') and bool(evs) and cost7 > 0,
        }
    rr = [ru[k] for k in sorted(ru)]
    out['gold']['resource_utilization'] = {
        'rows': len(rr),
        'unused_rows': sum(r['utilization_class'] == 'unused' for r in rr),
        'idle_rows': sum(r['utilization_class'] == 'idle' for r in rr),
        'active_rows': sum(r['utilization_class'] == 'active' for r in rr),
        'stopped_but_billed_rows': sum(r['stopped_but_billed'] for r in rr),
        'sum_events_30d': sum(r['events_30d'] for r in rr),
        'sum_active_days_30d': sum(r['active_days_30d'] for r in rr),
        'sum_cost_30d': dstr(sum((r['cost_30d'] for r in rr), ZERO)),
        'sum_cpu_hours_30d': dstr(sum((r['cpu_hours_30d'] for r in rr), ZERO)),
        'sum_storage_gb_hours_30d': dstr(sum((r['storage_gb_hours_30d'] for r in rr), ZERO)),
        'sum_requests_30d': dstr(sum((r['requests_30d'] for r in rr), ZERO)),
        'sum_idle_days': sum(r['idle_days'] for r in rr if r['idle_days'] is not None),
    }

    # ---- gold: usage_billing_reconciliation. Covered = the feed's event date range spans the whole month.
    tolerance = Decimal(os.environ.get('CPA_RECONCILIATION_TOLERANCE', '0.02'))
    first_day = min((e['usage_date'] for e in kept), default=None)
    met = defaultdict(lambda: {'cost': ZERO, 'days': set()})
    for e in kept:
        m = met[(e['org_id'], e['usage_date'].replace(day=1))]
        m['cost'] += e['cost']
        m['days'].add(e['usage_date'])
    recon = {}
    for key in set(met) | set(revenue):
        org, month = key
        m = met.get(key)
        b = revenue.get(key)
        metered = m['cost'] if m else ZERO
        days = len(m['days']) if m else 0
        month_end = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        covered = first_day is not None and first_day <= month and as_of >= month_end
        billed = b['gross_revenue_usd'] if b else None
        diff = billed - metered if billed is not None else None
        pct = r6(float(diff) / float(metered)) if diff is not None and metered != 0 else None
        if billed is None:
            status = 'no_invoice'
        elif days == 0:
            status = 'no_usage'
        elif not covered:
            status = 'partial_month'
        elif abs(diff) <= tolerance * abs(metered):
            status = 'match'
        elif diff > 0:
            status = 'over_billed'
        else:
            status = 'under_billed'
        recon[key] = {
            'org_id': org, 'billing_month': month.isoformat(), 'metered_cost_usd': metered, 'usage_days': days,
            'month_covered': covered, 'billed_subtotal_usd': billed, 'invoice_count': b['invoice_count'] if b else 0,
            'difference_usd': diff, 'difference_pct': pct, 'status': status,
        }
    rc = [recon[k] for k in sorted(recon)]
    out['gold']['usage_billing_reconciliation'] = {
        'rows': len(rc),
        'sum_metered_cost_usd': dstr(sum((r['metered_cost_usd'] for r in rc), ZERO)),
        'sum_billed_subtotal_usd': dstr(sum((r['billed_subtotal_usd'] for r in rc if r['billed_subtotal_usd'] is not None), ZERO)),
        'sum_difference_usd': dstr(sum((r['difference_usd'] for r in rc if r['difference_usd'] is not None), ZERO)),
        'sum_difference_pct': fsum6(r['difference_pct'] for r in rc if r['difference_pct'] is not None),
        'sum_usage_days': sum(r['usage_days'] for r in rc),
        'sum_invoice_count': sum(r['invoice_count'] for r in rc),
        'covered_rows': sum(r['month_covered'] for r in rc),
        **{f'status_{s}': sum(r['status'] == s for r in rc)
           for s in ('no_invoice', 'no_usage', 'partial_month', 'match', 'over_billed', 'under_billed')},
    }

    # ---- spot checks (deterministic picks from key-sorted rows)
    def fmt(row, nine=()):
        o = {}
        for k, v in row.items():
            if isinstance(v, Decimal):
                v = dstr(v, Q9 if k in nine else Q6)
            o[k] = v
        return o

    def pick(rows, idxs):
        seen_i, res = set(), []
        for i in idxs:
            if rows and 0 <= i < len(rows) and i not in seen_i:
                seen_i.add(i)
                res.append(rows[i])
        return res

    def add(mart, keycols, row, nine=()):
        r = fmt(row, nine)
        out['spot_checks'].append({'mart': mart, 'key': {k: r[k] for k in keycols}, 'row': r})

    dkeys = ('org_id', 'usage_date', 'service')
    d_sorted = [daily[k] for k in sorted(daily)]
    for r in pick(d_sorted, [0, len(d_sorted) // 2]):
        add('org_daily_usage_by_service', dkeys, r, ('carbon_kg',))
    # a day with a NULL carbon (v1-only day), if any
    v1 = [r for r in d_sorted if r['carbon_kg'] is None]
    if v1:
        add('org_daily_usage_by_service', dkeys, v1[len(v1) // 3], ('carbon_kg',))
    anoms = [r for r in a_rows if r['is_anomaly']]
    if anoms:
        add('cost_anomaly_mart', dkeys, anoms[0])
        if len(anoms) > 1:
            add('cost_anomaly_mart', dkeys, anoms[len(anoms) // 2])
    scored = [r for r in a_rows if not r['is_anomaly'] and r['zscore'] is not None]
    if scored:
        add('cost_anomaly_mart', dkeys, scored[len(scored) // 2])
    for r in pick(rv, [0, len(rv) // 2]):
        add('revenue_by_org_month', ('org_id', 'billing_month'), r)
    for r in pick(tk, [0, len(tk) // 2]):
        add('tickets_by_org_date', ('org_id', 'ticket_date', 'severity'), r)
    for r in pick(gr, [0, len(gr) // 2]):
        add('genai_tokens_by_org_date', ('org_id', 'usage_date'), r)
    for r in pick(sm, [len(sm) // 2, len(sm) - 1]):
        add('org_service_cost_summary', ('org_id', 'summary_date', 'service'), r)

    for r in pick(cr, [0, len(cr) // 2]):
        add('customer_360', ('org_id',), r)
    for r in pick(ar, [0, len(ar) // 2, len(ar) - 1]):
        add('marketing_attribution', ('attribution_model', 'channel', 'campaign'), r)
    for r in pick(rr, [0, len(rr) // 2]):
        add('resource_utilization', ('resource_id',), r)
    # one row of each status, the first in key order
    for st in ('no_invoice', 'no_usage', 'partial_month', 'match', 'over_billed', 'under_billed'):
        of = [r for r in rc if r['status'] == st]
        if of:
            add('usage_billing_reconciliation', ('org_id', 'billing_month'), of[0])

    # diagnostics for humans, on stderr only
    total_cost_kept = sum((e['cost'] for e in kept), ZERO)
    print(f'files={n_files} non-empty lines={n_lines} bronze rows={len(events)} kept={len(kept)} '
          f'kept cost={dstr(total_cost_kept)}', file=sys.stderr)
    n = len(kept) or 1
    su = out['silver']['usage_events']
    print('event anomaly rate: z={:.4%} mad={:.4%} pctl={:.4%} any={:.4%}'.format(
        su['anomaly_zscore'] / n, su['anomaly_mad'] / n, su['anomaly_pctl'] / n, su['anomaly_any'] / n),
        file=sys.stderr)
    na = len(a_rows) or 1
    g = out['gold']['cost_anomaly_mart']
    print('day anomaly rate: z={:.4%} mad={:.4%} pctl={:.4%} any={:.4%}'.format(
        g['zscore_flag'] / na, g['mad_flag'] / na, g['pctl_flag'] / na, g['is_anomaly'] / na), file=sys.stderr)
    return out


def main(argv):
    if len(argv) != 2:
        print('usage: python3 derive.py <landing_dir> > expected.json', file=sys.stderr)
        return 2
    out = derive(argv[1])
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
