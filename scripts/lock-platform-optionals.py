#!/usr/bin/env python3
"""Re-adds other platforms' optional native packages to package-lock.json.

The registry this project is built against does not serve some platform binaries (e.g. @swc/core-darwin-arm64,
@unrs/resolver-binding-win32-x64-msvc). `npm install` then leaves them out of the lock, and `npm ci` refuses the
lock as out of sync. Each missing optional dependency gets an entry with its version and the os/cpu read from its
name, so npm ci skips it on other platforms without fetching it. Run after `npm install` changes the lock.
"""
import json
import re
import sys

path = sys.argv[1] if len(sys.argv) > 1 else 'package-lock.json'
lock = json.load(open(path))
pkgs = lock['packages']
added = 0
for key, meta in list(pkgs.items()):
    for dep, ver in (meta.get('optionalDependencies') or {}).items():
        nested = f'{key}/node_modules/{dep}' if key else f'node_modules/{dep}'
        if nested in pkgs or f'node_modules/{dep}' in pkgs:
            continue
        name = dep.split('/')[-1]
        entry = {'version': ver.lstrip('^~='), 'optional': True}
        if meta.get('dev'):
            entry['dev'] = True
        oses = [o for o in ('darwin', 'linux', 'win32', 'android', 'freebsd', 'openharmony') if o in name]
        cpus = [c for c in ('arm64', 'x64', 'ia32', 'arm', 'ppc64', 's390x', 'riscv64', 'loong64')
                if re.search(r'(^|-)' + c + r'(-|$)', name)]
        if oses:
            entry['os'] = oses
        if cpus:
            entry['cpu'] = cpus
        pkgs[f'node_modules/{dep}'] = entry
        added += 1
with open(path, 'w') as f:
    json.dump(lock, f, indent=2)
    f.write('\n')
print(f'added {added} platform optional entries to {path}')
