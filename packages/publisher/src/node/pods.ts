// The local pod record file, `$TPOD_HOME/pods.json`: read-modify-write under a lock, written atomically (0600).
import { PublisherError } from "../errors.js";
import { findPod, type PodRecord, type PodsFile, parsePodRecord, parsePodsFile } from "../pods.js";
import { parseJson, readTextBounded, tpodPaths, withFileLock, writeFileAtomic } from "./files.js";

const MAX_PODS_FILE_BYTES = 16 * 1024 * 1024;

export class PodStore {
  constructor(readonly file: string) {}

  static at(home: string): PodStore {
    return new PodStore(tpodPaths(home).pods);
  }

  private async read(): Promise<PodsFile> {
    const text = await readTextBounded(this.file, MAX_PODS_FILE_BYTES, "pod record", "POD_RECORD");
    if (text === undefined) return { version: 1, pods: [] };
    return parsePodsFile(parseJson(text, this.file, "POD_RECORD"));
  }

  private async write(doc: PodsFile): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify(doc, null, 2)}\n`);
  }

  private mutate<T>(fn: (doc: PodsFile) => T): Promise<T> {
    return withFileLock(this.file, async () => {
      const doc = await this.read();
      const result = fn(doc);
      await this.write(doc);
      return result;
    });
  }

  /** Every recorded pod, newest first; optionally only those on one chain. */
  async list(filter: { chainId?: number } = {}): Promise<PodRecord[]> {
    const { pods } = await this.read();
    return pods
      .filter((p) => filter.chainId === undefined || p.chainId === filter.chainId)
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  }

  /** One pod by full id, unique id prefix or name (see findPod). */
  async get(ref: string, filter: { chainId?: number } = {}): Promise<PodRecord> {
    return findPod(await this.list(filter), ref);
  }

  /** Records a new pod; POD_RECORD when the same pod id is already recorded on that chain. */
  async add(record: PodRecord): Promise<PodRecord> {
    const rec = parsePodRecord(record);
    return this.mutate((doc) => {
      if (doc.pods.some((p) => p.podId === rec.podId && p.chainId === rec.chainId))
        throw new PublisherError("POD_RECORD", `pod ${rec.podId} is already recorded`);
      doc.pods.push(rec);
      return rec;
    });
  }

  /** Changes fields of a recorded pod (podId and chainId stay); sets updatedAt. */
  async update(
    podId: string,
    chainId: number,
    patch: Partial<Omit<PodRecord, "podId" | "chainId">>,
  ): Promise<PodRecord> {
    return this.mutate((doc) => {
      const i = doc.pods.findIndex((p) => p.podId === podId.toLowerCase() && p.chainId === chainId);
      if (i < 0) throw new PublisherError("POD_RECORD", `no pod ${podId} in the local record`);
      const next = parsePodRecord({ ...doc.pods[i], ...patch, updatedAt: new Date().toISOString() });
      doc.pods[i] = next;
      return next;
    });
  }

  /** Forgets a pod (after `tpod delete`); false when it was not recorded. */
  async remove(podId: string, chainId: number): Promise<boolean> {
    return this.mutate((doc) => {
      const before = doc.pods.length;
      doc.pods = doc.pods.filter((p) => !(p.podId === podId.toLowerCase() && p.chainId === chainId));
      return doc.pods.length < before;
    });
  }
}
