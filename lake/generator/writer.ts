/**
 * File output for the generator: buffered, backpressure-aware, and atomic per file.
 *
 * A watcher on the landing directory (SPEC §9) may pick up a file the moment it appears, so every file is
 * written under a temporary dot-name and renamed into place only when complete.
 */
import { once } from 'node:events';
import { createWriteStream, promises as fsp, rename, writeFile, type WriteStream } from 'node:fs';
import path from 'node:path';

const FLUSH_AT_CHARS = 1 << 18;

function tempPathFor(finalPath: string): string {
  return path.join(path.dirname(finalPath), `.${path.basename(finalPath)}.partial`);
}

/** Streams text into a file in ~256 KiB chunks, waiting for 'drain' when the OS is slower than the generator. */
export class BufferedFileWriter {
  private parts: string[] = [];
  private size = 0;
  private error: Error | undefined;

  private constructor(
    private readonly stream: WriteStream,
    private readonly tempPath: string,
    private readonly finalPath: string,
    private readonly encoding: BufferEncoding,
  ) {
    // Without a listener a stream error (disk full, permissions) would crash the process instead of rejecting.
    stream.on('error', (err: Error) => (this.error ??= err));
  }

  static open(finalPath: string, encoding: BufferEncoding = 'utf8'): BufferedFileWriter {
    const tempPath = tempPathFor(finalPath);
    return new BufferedFileWriter(createWriteStream(tempPath), tempPath, finalPath, encoding);
  }

  private throwIfFailed(): void {
    if (this.error) throw new Error(`writing ${this.finalPath} failed: ${this.error.message}`);
  }

  /** Appends text; resolves at once unless the buffer was handed to a stream that asked us to wait. */
  async write(text: string): Promise<void> {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= FLUSH_AT_CHARS) await this.flush();
  }

  private async flush(): Promise<void> {
    this.throwIfFailed();
    if (this.size === 0) return;
    const chunk = Buffer.from(this.parts.join(''), this.encoding);
    this.parts = [];
    this.size = 0;
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }

  /** Flushes, closes and renames the file into place. */
  async close(): Promise<void> {
    await this.flush();
    this.stream.end();
    if (!this.stream.closed) await once(this.stream, 'close');
    this.throwIfFailed();
    await fsp.rename(this.tempPath, this.finalPath);
  }
}

/** Callback fs: the promise API's FileHandle round trips cost ~20 % more main-thread time per small file. */
function writeThenRename(tempPath: string, finalPath: string, content: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    writeFile(tempPath, content, (writeError) => {
      if (writeError) reject(writeError);
      else rename(tempPath, finalPath, (renameError) => (renameError ? reject(renameError) : resolve()));
    });
  });
}

/**
 * Writes whole small files (one events micro-batch each) with at most `maxInFlight` writes pending, so the next
 * file is generated while the previous one is being written, without queueing unbounded memory.
 */
export class FilePipeline {
  private readonly pending: Promise<void>[] = [];

  constructor(private readonly maxInFlight = 8) {}

  async write(finalPath: string, content: Buffer): Promise<void> {
    while (this.pending.length >= this.maxInFlight) await this.pending.shift();
    const tempPath = tempPathFor(finalPath);
    const done = writeThenRename(tempPath, finalPath, content);
    // Handled here so a failure before it is awaited is not an unhandled rejection; awaiting it still throws.
    done.catch(() => undefined);
    this.pending.push(done);
  }

  async drain(): Promise<void> {
    while (this.pending.length > 0) await this.pending.shift();
  }
}
