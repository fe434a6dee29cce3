'use strict';
/**
 * A small file system of the test's own: an ext4 image, loop-mounted in a temp directory (needs root, as CI runs).
 * It can be filled up (a full disk) and its files made immutable (writes fail with EPERM: a read-only file), and
 * both faults can be taken away again.
 */
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { tempDir } = require('./tmp');

/** Why loop mounts cannot be made here, or undefined when they can. */
function loopUnavailable() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root';
  for (const tool of ['mkfs.ext4', 'mount', 'umount', 'chattr']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} missing`;
    }
  }
  return undefined;
}

function mountLoop(sizeMb = 16) {
  const tmp = tempDir('esp-e2ee-loopfs-');
  const image = path.join(tmp.dir, 'fs.img');
  const dir = path.join(tmp.dir, 'mnt');
  fs.mkdirSync(dir);
  execFileSync('truncate', ['-s', `${sizeMb}M`, image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
  execFileSync('mount', ['-o', 'loop', image, dir]);
  const filler = path.join(dir, 'filler');
  return {
    dir,
    /** Fills every free block (the file system reports ENOSPC afterwards). */
    fill() {
      const fd = fs.openSync(filler, 'a');
      const block = Buffer.alloc(64 * 1024);
      try {
        for (;;) fs.writeSync(fd, block);
      } catch (err) {
        if (err.code !== 'ENOSPC') throw err;
      } finally {
        fs.closeSync(fd);
      }
      // Small writes can still find room in partial blocks: take those too.
      const fd2 = fs.openSync(path.join(dir, 'filler2'), 'a');
      try {
        for (;;) fs.writeSync(fd2, Buffer.alloc(512));
      } catch (err) {
        if (err.code !== 'ENOSPC') throw err;
      } finally {
        fs.closeSync(fd2);
      }
    },
    free() {
      fs.rmSync(filler, { force: true });
      fs.rmSync(path.join(dir, 'filler2'), { force: true });
    },
    /** Sets or clears the immutable flag (chattr +i / -i) of existing files. */
    immutable(files, on) {
      const existing = files.filter((f) => fs.existsSync(f));
      if (existing.length) execFileSync('chattr', [on ? '+i' : '-i', ...existing]);
    },
    cleanup() {
      try {
        execFileSync('umount', ['-l', dir]);
      } finally {
        tmp.cleanup();
      }
    },
  };
}

module.exports = { mountLoop, loopUnavailable };
