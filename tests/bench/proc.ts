/**
 * Memory of a process from `/proc/<pid>/status`: resident set now (VmRSS), split into pages of
 * mapped files (RssFile: the runtime's own executable, mostly) and anonymous memory (RssAnon:
 * heaps), and its high-water mark (VmHWM), plus a sampler that keeps the largest VmRSS seen.
 *
 * @module
 */

/** Memory figures of one process, in MiB. */
export interface ProcMemory {
  /** Resident set size now. */
  rssMiB: number;
  /** Largest resident set size since the process started. */
  hwmMiB: number;
  /** Of the resident set, pages of mapped files. */
  fileMiB: number;
  /** Of the resident set, anonymous memory. */
  anonMiB: number;
}

function field(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
  if (!m) throw new Error(`/proc status has no ${name} line`);
  return Number(m[1]) / 1024;
}

/** Reads the memory figures of process `pid`. */
export function procMemory(pid: number): ProcMemory {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  return {
    rssMiB: field(text, "VmRSS"),
    hwmMiB: field(text, "VmHWM"),
    fileMiB: field(text, "RssFile"),
    anonMiB: field(text, "RssAnon"),
  };
}

/** Samples VmRSS of a process every `intervalMs` until stopped; keeps the maximum and all samples. */
export class RssSampler {
  readonly #pid: number;
  readonly #timer: ReturnType<typeof setInterval>;
  /** Every VmRSS reading, in MiB. */
  readonly samples: number[] = [];
  /** The largest VmRSS read, in MiB. */
  max = 0;

  /** Starts sampling process `pid`. */
  constructor(pid: number, intervalMs = 50) {
    this.#pid = pid;
    this.#take();
    this.#timer = setInterval(() => this.#take(), intervalMs);
  }

  #take(): void {
    try {
      const { rssMiB } = procMemory(this.#pid);
      this.samples.push(rssMiB);
      if (rssMiB > this.max) this.max = rssMiB;
    } catch {
      // The process is gone.
    }
  }

  /** Stops sampling (after one last reading) and returns the maximum. */
  stop(): number {
    clearInterval(this.#timer);
    this.#take();
    return this.max;
  }
}
