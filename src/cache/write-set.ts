/** Tables a statement (or a transaction) wrote; `namespace` when it cannot be told. */
export interface WriteSet {
  namespace: boolean
  readonly tables: Set<string>
}
