import { spawn } from 'node:child_process';
import net from 'node:net';
import { loadConfig } from '../../config/env';
import { freePort, listensOn, startDevServer } from '../../worker/temporal';

// Two processes can be handed the same free port; the one that binds second must not take the other's server for its
// own (the e2e suite once saw `cpa run` attach to a test's `cpa dev` server, which the test then killed).
describe('the embedded dev server is the one started here', () => {
  test('listensOn tells the process (or its child) holding a listening port from one that does not', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    expect(listensOn(process.pid, port)).toBe(true);
    expect(listensOn(process.pid, await freePort())).toBe(false);
    await new Promise<void>((r) => srv.close(() => r()));
    expect(listensOn(process.pid, port)).toBe(false);
    // A process that is gone holds nothing.
    expect(listensOn(2 ** 22 + 1, port)).toBe(false);

    // A child's socket counts for the parent (a wrapper script that runs the real server).
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(0, '127.0.0.1', function () { console.log(this.address().port) })`,
    ]);
    try {
      const childPort = await new Promise<number>((resolve) =>
        child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
      );
      expect(listensOn(child.pid!, childPort)).toBe(true);
      expect(listensOn(process.pid, childPort)).toBe(true);
      expect(listensOn(child.pid!, port)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('a port another process serves is refused, not attached to', async () => {
    const config = loadConfig({});
    // Another process's listener on the port the dev server is told to use: it answers TCP, so only the owner check
    // can tell. A real Temporal server there (the case seen) answers gRPC as well.
    const other = await startDevServer(config);
    try {
      const port = Number(other.address.split(':')[1]);
      // Refused either way: the owner check saw another process answer, or our server's exit (it cannot bind) was
      // seen first. Never attached: before the check, this resolved to the other server's address.
      await expect(startDevServer(config, { port })).rejects.toThrow(
        new RegExp(`port ${port} is answered by another process|address already in use`),
      );
    } finally {
      await other.stop();
    }
  }, 60_000);
});
