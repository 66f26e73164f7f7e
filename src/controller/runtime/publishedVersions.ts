// The peer lists this PgCluster has published lately, by the version the `version` annotation carries
// (README, "Outputs", spec.output.podAnnotationFormat): the readiness gate reads a member's annotation as the
// list of that version, so that "in every output" still means "every member's annotation carries the version
// of a list that contains it". Bounded: a version older than the last LIMIT lists is unknown, read as listing
// nobody (the pod's annotation is then rewritten with the current version anyway, being stale).
export class PublishedVersions {
  static readonly LIMIT = 64;
  #lists = new Map<string, ReadonlySet<string>>();

  /** The list of `version` is being published (again): it becomes the newest. */
  note(version: string, names: ReadonlySet<string>): void {
    if (this.#lists.get(version) === names) return;
    this.#lists.delete(version);
    this.#lists.set(version, names);
    if (this.#lists.size > PublishedVersions.LIMIT) this.#lists.delete(this.#lists.keys().next().value as string);
  }

  /** The names of a version published lately; undefined: not one of ours, or too old. */
  names(version: string): ReadonlySet<string> | undefined {
    return this.#lists.get(version);
  }
}
